"""The alert rules and scrape config, checked by Prometheus's own promtool (Debian `prometheus`).

`make system-deps` installs promtool; these tests fail, not skip, without it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROM_DIR = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
REQUIRED_ALERTS = {
    "SentimentConsumerLagGrowing",
    "SentimentNoThroughputWithLag",
    "SentimentConsumerStuck",
    "SentimentDeadLetterRatioHigh",
    "SentimentP99LatencyHigh",
    "SentimentScoreDrift",
    "SentimentOOVAboveReference",
    "SentimentDeliveryErrors",
    "SentimentShadowDisagrees",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: run `make system-deps` (Debian package prometheus)"
    return subprocess.run(
        [exe, *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=120, check=False
    )


def _rules() -> list[dict]:
    doc = yaml.safe_load((PROM_DIR / "alerts.yml").read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"]]


def test_promtool_check_rules() -> None:
    res = promtool("check", "rules", "alerts.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in res.stdout


def test_promtool_test_rules() -> None:
    res = promtool("test", "rules", "alerts_test.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_promtool_check_config_of_the_scrape_example() -> None:
    res = promtool("check", "config", "prometheus.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_required_alert_exists_with_a_runbook_and_severity() -> None:
    rules = {r["alert"]: r for r in _rules()}
    assert set(rules) >= REQUIRED_ALERTS
    for name, rule in rules.items():
        assert rule["annotations"].get("runbook", "").strip(), f"{name} has no runbook"
        assert rule["annotations"].get("summary", "").strip(), f"{name} has no summary"
        assert rule["labels"]["severity"] in ("warning", "critical"), name


def test_every_alert_is_unit_tested_both_firing_and_not_firing() -> None:
    doc = yaml.safe_load((PROM_DIR / "alerts_test.yml").read_text(encoding="utf-8"))
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in doc["tests"]:
        for case in test["alert_rule_test"]:
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    names = {r["alert"] for r in _rules()}
    assert firing == names, f"never tested firing: {names - firing}"
    assert quiet == names, f"never tested quiet: {names - quiet}"


@pytest.mark.parametrize("alert", sorted({r["alert"] for r in _rules()}))
def test_a_broken_expectation_makes_promtool_fail(alert: str, tmp_path: Path) -> None:
    """The unit tests can fail: expecting silence where an alert fires is reported as a failure."""
    doc = yaml.safe_load((PROM_DIR / "alerts_test.yml").read_text(encoding="utf-8"))
    doc["rule_files"] = [str(PROM_DIR / "alerts.yml")]
    for test in doc["tests"]:
        for case in test["alert_rule_test"]:
            if case["alertname"] == alert and case["exp_alerts"]:
                case["exp_alerts"] = []
    broken = tmp_path / "broken_test.yml"
    broken.write_text(yaml.safe_dump(doc), encoding="utf-8")
    res = promtool("test", "rules", str(broken))
    assert res.returncode != 0
    assert alert in res.stdout + res.stderr
