"""The service's metrics: issue 4's names, types and labels, and an exposition promtool accepts."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric

from consumer import metrics

# (family name as the client registers it, type, label names); counters gain `_total` on export.
EXPECTED = [
    ("sentiment_messages_consumed", "counter", ()),
    ("sentiment_results_produced", "counter", ("label",)),
    ("sentiment_dead_letters", "counter", ("reason",)),
    ("sentiment_delivery_errors", "counter", ()),
    ("sentiment_batch_size", "histogram", ()),
    ("sentiment_batch_wait_seconds", "histogram", ()),
    ("sentiment_preprocess_seconds", "histogram", ()),
    ("sentiment_inference_seconds", "histogram", ()),
    ("sentiment_end_to_end_latency_seconds", "histogram", ()),
    ("sentiment_consumer_lag", "gauge", ("topic", "partition")),
    ("sentiment_assigned_partitions", "gauge", ()),
    ("sentiment_rebalances", "counter", ()),
    ("sentiment_commits", "counter", ()),
    ("sentiment_seconds_since_progress", "gauge", ()),
    ("sentiment_model", "info", ()),
    ("sentiment_drift_psi", "gauge", ("feature",)),
    ("sentiment_oov_ratio", "gauge", ("window",)),
    ("sentiment_label_share", "gauge", ("label",)),
    ("sentiment_mean_confidence", "gauge", ()),
    ("sentiment_gpu_memory_bytes", "gauge", ()),
]


def _families() -> dict[str, Metric]:
    return {m.name: m for m in metrics.REGISTRY.collect()}


def test_every_metric_of_issue_4_is_registered_with_its_type_and_labels() -> None:
    families = _families()
    collectors = metrics.REGISTRY._names_to_collectors  # the registry's only map to label names
    for name, kind, labels in EXPECTED:
        assert name in families, f"{name} is not registered"
        assert families[name].type == kind, f"{name} is a {families[name].type}, not {kind}"
        assert tuple(getattr(collectors[name], "_labelnames", ())) == labels, name


def test_only_the_sentiment_prefix_and_base_units_are_used() -> None:
    for name in _families():
        assert name.startswith("sentiment_"), name
        assert not name.endswith(("_ms", "_milliseconds", "_kb", "_mb")), name


def test_known_label_sets_are_preinitialised_to_zero() -> None:
    metrics.init_label_series(("negative", "positive"))
    get = metrics.REGISTRY.get_sample_value
    for reason in metrics.DLQ_REASONS:
        assert get("sentiment_dead_letters_total", {"reason": reason}) is not None, reason
    for label in ("negative", "positive"):
        assert get("sentiment_results_produced_total", {"label": label}) is not None
        assert get("sentiment_label_share", {"label": label}) is not None
    for feature in ("score", "token_length"):
        assert get("sentiment_drift_psi", {"feature": feature}) is not None
    for window in ("recent", "reference"):
        assert get("sentiment_oov_ratio", {"window": window}) is not None


def test_latency_buckets_are_in_seconds_and_ascending() -> None:
    for hist in (metrics.BATCH_WAIT, metrics.PREPROCESS, metrics.INFERENCE, metrics.END_TO_END):
        bounds = list(hist._upper_bounds)
        assert bounds == sorted(bounds)
        assert bounds[0] <= 0.01 and bounds[-2] >= 10  # ms resolution up to tens of seconds


def test_promtool_check_metrics_is_clean_on_the_exposition() -> None:
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: run `make system-deps` (Debian package prometheus)"
    metrics.init_label_series(("negative", "positive"))
    metrics.MODEL_INFO.info({"version": "vtest", "device": "cpu"})
    metrics.END_TO_END.observe(0.02)
    text = generate_latest(metrics.REGISTRY)
    res = subprocess.run(
        [exe, "check", "metrics"], input=text, capture_output=True, timeout=60, check=False
    )
    assert res.returncode == 0, (res.stdout + res.stderr).decode()
    assert res.stdout.strip() == b""  # no lint findings either


@pytest.mark.parametrize("bad", [b"sentiment_x_total 1\n", b"# TYPE a counter\na 1\na 2\n"])
def test_promtool_check_metrics_does_find_problems(bad: bytes) -> None:
    """The promtool check above can fail: no HELP text, a counter without `_total`."""
    exe = shutil.which("promtool")
    assert exe
    res = subprocess.run(
        [exe, "check", "metrics"], input=bad, capture_output=True, timeout=60, check=False
    )
    assert res.returncode != 0
    assert b"no help text" in res.stdout + res.stderr
