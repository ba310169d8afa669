"""The Grafana dashboard's structure: importable as is, one ${datasource} variable, every panel.

Grafana itself does not install here; whether each query returns data is proven against a real
Prometheus in test_prometheus_live.py, which uses `dashboard_queries` below.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "sentiment-service.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# Panel title -> a metric its queries must read (issue 4's list of panels).
REQUIRED_PANELS = {
    "Throughput in and out": [
        "sentiment_messages_consumed_total",
        "sentiment_results_produced_total",
    ],
    "Dead letters by reason": ["sentiment_dead_letters_total"],
    "Batch size": ["sentiment_batch_size_bucket"],
    "End-to-end latency p50 / p95 / p99": ["sentiment_end_to_end_latency_seconds_bucket"],
    "Consumer lag by partition": ["sentiment_consumer_lag"],
    "Label mix": ["sentiment_results_produced_total"],
    "Drift PSI": ["sentiment_drift_psi"],
    "OOV ratio against the reference": ["sentiment_oov_ratio"],
    "Mean confidence (drift window)": ["sentiment_mean_confidence"],
    "Model version": ["sentiment_model_info"],
    "Shadow agreement with the live model": ["sentiment_shadow_agreement_ratio"],
}


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_queries(job_regex: str, rate_interval: str) -> list[tuple[str, str, str]]:
    """(panel title, refId, PromQL) for every target, with Grafana's variables substituted."""
    out = []
    for panel in load_dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", rate_interval)
            expr = expr.replace("${job}", job_regex).replace("$job", job_regex)
            out.append((panel["title"], target["refId"], expr))
    return out


def test_dashboard_is_a_plain_importable_dashboard() -> None:
    dash = load_dashboard()
    # Importable as is: no fixed id (Grafana assigns one), a stable uid, no __inputs to fill in.
    assert dash["id"] is None
    assert dash["uid"] and len(dash["uid"]) <= 40
    assert "__inputs" not in dash
    assert isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_datasource_is_a_variable_used_by_every_panel_and_query() -> None:
    dash = load_dashboard()
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["datasource"] == DATASOURCE
    for panel in dash["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_every_required_panel_is_there_and_reads_its_metric() -> None:
    panels = {p["title"]: p for p in load_dashboard()["panels"]}
    for title, metrics in REQUIRED_PANELS.items():
        assert title in panels, f"missing panel {title!r}"
        exprs = " ".join(t["expr"] for t in panels[title]["targets"])
        for metric in metrics:
            assert metric in exprs, f"{title!r} does not read {metric}"


def test_latency_panel_shows_p50_p95_p99_and_psi_panel_the_bands() -> None:
    panels = {p["title"]: p for p in load_dashboard()["panels"]}
    latency = panels["End-to-end latency p50 / p95 / p99"]["targets"]
    quantiles = sorted(
        re.findall(r"histogram_quantile\(([\d.]+)", " ".join(t["expr"] for t in latency))
    )
    assert quantiles == ["0.5", "0.95", "0.99"]
    psi = panels["Drift PSI"]["fieldConfig"]["defaults"]
    steps = [s["value"] for s in psi["thresholds"]["steps"]]
    assert steps == [None, 0.1, 0.25]
    assert psi["custom"]["thresholdsStyle"]["mode"] != "off"


def test_substitution_leaves_no_grafana_variables() -> None:
    for title, ref, expr in dashboard_queries("sentiment", "1m"):
        assert "$" not in expr, f"{title}/{ref}: {expr}"


def test_panels_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for p in load_dashboard()["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))
