"""Write the monitoring component's PrometheusRule from deploy/prometheus/alerts.yml.

The alert rules have one source, the observability file that promtool tests. This copies its
groups into a prometheus-operator PrometheusRule, and the file itself into the Helm chart (whose
templates can read only files inside the chart); tests/test_deploy_k8s.py and
tests/test_deploy_helm.py fail when they differ. Run it with `make k8s-rules` after changing the
alerts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE = ROOT / "deploy" / "k8s" / "components" / "monitoring" / "prometheusrule.yaml"
CHART_ALERTS = ROOT / "deploy" / "helm" / "sentiment-stream" / "files" / "alerts.yml"
HEADER = (
    "# Generated from deploy/prometheus/alerts.yml by `make k8s-rules`; edit that file, not this.\n"
    "# The `release` label is what kube-prometheus-stack's default ruleSelector matches: set it\n"
    "# to your Prometheus's selector.\n"
)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PromQL over several lines stays readable as a literal block.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def prometheus_rule(groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "sentiment", "labels": {"release": "prometheus"}},
        "spec": {"groups": groups},
    }


def render() -> str:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    body = yaml.dump(
        prometheus_rule(groups), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )
    return HEADER + body


if __name__ == "__main__":
    RULE.write_text(render(), encoding="utf-8")
    print(f"wrote {RULE.relative_to(ROOT)}")
    CHART_ALERTS.write_bytes(ALERTS.read_bytes())
    print(f"wrote {CHART_ALERTS.relative_to(ROOT)}")
