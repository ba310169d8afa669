"""A real Prometheus scrapes the live service while it labels a real stream through the broker.

Prometheus is Debian's server (`make system-deps`), started here with its own config and TSDB in
a temp dir on a loopback port, scraping every second and loading deploy/prometheus/alerts.yml.
The service is `python -m consumer` (tests/conftest.py). Then, through Prometheus's HTTP API:
the counters agree with what was produced and what the output and dead-letter topics hold,
drift stays low on held-out reviews and rises on news text, every query of every dashboard
panel returns data, and the alert rules evaluate cleanly.
`promtool check metrics` is run on the text the service serves on /metrics.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumer.embedded_broker import free_port
from tests.conftest import encode, produce, read_all, unique, wait_for
from tests.test_prometheus_dashboard import dashboard_queries

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
JOB = "sentiment"
SAMPLES = ROOT / "consumer" / "samples" / "reviews.jsonl"  # the test split of the reviews
WINDOW = 600  # drift window (posts): exactly the good reviews sent, whatever their order
SCRAPE_INTERVAL_S = 1
# Grafana's $__rate_interval is at least four scrape intervals; a little more keeps two samples
# in every window even when a scrape is late on a busy 2-core machine.
RATE_INTERVAL = "6s"


@pytest.fixture(scope="session")
def model_name() -> str:
    """The shipped model; SENTIMENT_TEST_MODEL points at another artifact while it is rebuilt."""
    return os.environ.get("SENTIMENT_TEST_MODEL", "default")


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def api(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as r:  # noqa: S310
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        return data["result"]

    def value(self, expr: str) -> float:
        result = self.query(expr)
        assert len(result) == 1, f"{expr}: {result}"
        return float(result[0]["value"][1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Any]:
    """Factory: a Prometheus scraping the given /metrics port every second."""
    started: list[Prometheus] = []

    def start(target_port: int) -> Prometheus:
        exe = shutil.which("prometheus")
        assert exe, "prometheus is missing: run `make system-deps` (Debian package prometheus)"
        home = tmp_path / f"prometheus-{len(started)}"
        home.mkdir()
        shutil.copy(ROOT / "deploy" / "prometheus" / "alerts.yml", home / "alerts.yml")
        config = {
            "global": {
                "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
                "evaluation_interval": f"{SCRAPE_INTERVAL_S}s",
            },
            "rule_files": ["alerts.yml"],
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                }
            ],
        }
        (home / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
        port = free_port()
        log_path = home / "prometheus.log"
        log = log_path.open("wb")
        proc = subprocess.Popen(
            [
                exe,
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.console.templates=",
                "--web.console.libraries=",
            ],
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        prom = Prometheus(f"http://127.0.0.1:{port}", proc, log_path)
        started.append(prom)

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited {proc.returncode}:\n{prom.log()}")
            try:
                with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as r:  # noqa: S310
                    return r.status == 200
            except OSError:
                return False

        wait_for(ready, 60, "Prometheus /-/ready")
        return prom

    yield start
    for prom in started:
        prom.proc.terminate()
        try:
            prom.proc.wait(30)
        except subprocess.TimeoutExpired:
            prom.proc.kill()
            prom.proc.wait()


def _finite_points(result: list[dict[str, Any]]) -> int:
    return sum(1 for series in result for _, v in series["values"] if math.isfinite(float(v)))


def test_prometheus_sees_a_live_stream_truthfully(
    kafka_bootstrap: str, make_topics, start_service, start_prometheus, model_name
) -> None:
    topics = make_topics(partitions=3)
    svc = start_service(
        topics,
        unique("group"),
        max_message_bytes=4096,
        batch_max_wait_ms=100,
        drift_window_size=WINDOW,
        shadow_model=model_name,  # the live model as its own shadow: the shadow panels have data
    )
    prom = start_prometheus(svc.port)
    wait_for(lambda: prom.query(f'up{{job="{JOB}"}} == 1') != [], 60, "the scrape target up")
    t_start = time.time()

    # N inputs in three waves, K of them malformed in every way a message can be. The good ones
    # are held-out reviews (the test split), drawn at random so the labels are mixed.
    rows = [json.loads(line) for line in SAMPLES.read_text("utf-8").splitlines()]
    good = [
        {"id": f"review-{i}", "text": r["text"]}
        for i, r in enumerate(random.Random(11).sample(rows, WINDOW))
    ]
    malformed: list[tuple[str, bytes]] = (
        [("invalid_json", b'{"id": "x", "text": "unterminated')] * 5
        + [("invalid_json", b"[1, 2, 3]")] * 2
        + [("missing_text", json.dumps({"id": f"m{i}"}).encode()) for i in range(4)]
        + [("not_utf8", b'{"id": "u", "text": "\xff\xfe\xfa"}')] * 3
        + [("too_large", json.dumps({"id": "big", "text": "好" * 3000}).encode())] * 2
        + [("empty_text", json.dumps({"id": f"e{i}", "text": "   "}).encode()) for i in range(3)]
    )
    values = encode(good)
    waves = [values[:200] + [v for _, v in malformed[:9]], values[200:400], values[400:]]
    waves[2] += [v for _, v in malformed[9:]]
    n_total = len(values) + len(malformed)
    k_malformed = len(malformed)
    expected_dead = Counter(reason for reason, _ in malformed)

    def answered(n: int) -> bool:
        consumed = prom.query(f"sum(sentiment_messages_consumed_total) == {n}")
        out = prom.query(
            f"sum(sentiment_results_produced_total) + sum(sentiment_dead_letters_total) == {n}"
        )
        return bool(consumed and out)

    sent = 0
    for wave in waves:
        produce(kafka_bootstrap, topics.input, wave)
        sent += len(wave)
        # Each wave is fully handled and scraped before the next, so the series have a history.
        wait_for(partial(answered, sent), 120, f"Prometheus to see {sent} inputs answered")

    # Counters agree with the truth: consumed = N, results = N - K, dead letters = K by reason.
    assert prom.value("sum(sentiment_messages_consumed_total)") == n_total
    assert prom.value("sum(sentiment_results_produced_total)") == n_total - k_malformed
    by_reason = {
        r["metric"]["reason"]: float(r["value"][1])
        for r in prom.query("sum by (reason) (sentiment_dead_letters_total)")
    }
    assert {k: v for k, v in by_reason.items() if v} == dict(expected_dead)
    assert prom.value("sum(sentiment_delivery_errors_total)") == 0

    # ... and with what the topics hold, read by a separate client.
    results = read_all(kafka_bootstrap, topics.output)
    dead = read_all(kafka_bootstrap, topics.dlq)
    assert sorted(json.loads(m.value() or b"")["id"] for m in results) == sorted(
        r["id"] for r in good
    )
    assert len(dead) == k_malformed
    by_label = Counter(json.loads(m.value() or b"")["label"] for m in results)
    prom_by_label = {
        r["metric"]["label"]: float(r["value"][1])
        for r in prom.query("sum by (label) (sentiment_results_produced_total)")
    }
    assert {k: v for k, v in prom_by_label.items() if v} == {
        k: float(v) for k, v in by_label.items()
    }

    # Lag reaches 0 on every partition once the last stored offsets are in the statistics.
    wait_for(
        lambda: len(prom.query("sentiment_consumer_lag == 0")) == topics.partitions,
        60,
        "zero lag on every partition in Prometheus",
    )
    assert prom.value("sentiment_assigned_partitions") == topics.partitions
    info = prom.query("sentiment_model_info")
    assert len(info) == 1 and info[0]["metric"]["version"].startswith("v")

    # Drift as operators see it: held-out reviews look like the reference...
    assert prom.value('sentiment_drift_psi{feature="score"}') < 0.1
    oov_reference = prom.value('sentiment_oov_ratio{window="reference"}')
    # A character vocabulary's OOV ratio is near zero whatever the domain (test_drift_monitor).
    oov_floor = 1e-3
    assert prom.value('sentiment_oov_ratio{window="recent"}') < max(2 * oov_reference, oov_floor)
    # ... and a window of news text (People's Daily) does not.
    from training.data import unlabelled_people_daily  # test-only: another domain's text

    lines = [t for t in unlabelled_people_daily() if 20 <= len(t) <= 1000]
    news = [
        {"id": f"news-{i}", "text": t}
        for i, t in enumerate(random.Random(12).sample(lines, WINDOW))
    ]
    produce(kafka_bootstrap, topics.input, encode(news))
    sent += len(news)
    wait_for(partial(answered, sent), 120, f"Prometheus to see {sent} inputs answered")
    assert prom.value('sentiment_drift_psi{feature="score"}') > 0.25
    assert prom.value('sentiment_drift_psi{feature="token_length"}') > 0.25
    if oov_reference >= oov_floor:
        assert prom.value('sentiment_oov_ratio{window="recent"}') > 2 * oov_reference
    assert prom.value("sentiment_shadow_agreement_ratio") == 1.0

    # Every query of every dashboard panel returns data (finite points, not just empty NaN).
    t_end = time.time() + SCRAPE_INTERVAL_S
    empty = []
    queries = dashboard_queries(job_regex=JOB, rate_interval=RATE_INTERVAL)
    assert len(queries) >= 20
    for title, ref, expr in queries:
        result = prom.api(
            "/api/v1/query_range", query=expr, start=t_start, end=t_end, step=SCRAPE_INTERVAL_S
        )["result"]
        if _finite_points(result) == 0:
            empty.append(f"{title}/{ref}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
    jobs = prom.api("/api/v1/label/job/values", **{"match[]": "sentiment_messages_consumed_total"})
    assert jobs == [JOB]  # what the dashboard's $job variable offers

    # The alert rules load and evaluate against the real series without errors.
    groups = prom.api("/api/v1/rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text("utf-8"))
    assert len(rules) == sum(len(g["rules"]) for g in alerts["groups"])
    wait_for(
        lambda: all(
            r.get("lastEvaluation", "").startswith("2") and r["health"] == "ok"
            for g in prom.api("/api/v1/rules")["groups"]
            for r in g["rules"]
        ),
        30,
        "every alert rule evaluated healthily",
    )

    # The scraped text passes promtool's own checker.
    status, text = svc.get("/metrics")
    assert status == 200
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run `make system-deps`"
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60
    )
    assert check.returncode == 0, (check.stdout + check.stderr).decode()
    assert check.stdout.strip() == b""

    assert svc.stop() == 0
