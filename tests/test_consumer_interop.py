"""Independent Kafka clients feed the service and read it: kafka-python (pure Python), kcat."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import confluent_kafka
import pytest

from consumer import records
from tests.conftest import posts, unique

pytestmark = pytest.mark.integration

with warnings.catch_warnings():
    # kafka-python loads its protocol schemas through a deprecated importlib.resources call.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer, KafkaProducer


def read_with_kafka_python(bootstrap, topic, n, timeout=120.0):
    """Read `n` records as a kafka-python group member, and commit them."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=unique("kafka-python"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n:
            assert time.monotonic() < deadline, f"kafka-python read {len(got)} of {n} records"
            for batch in consumer.poll(timeout_ms=500).values():
                got.extend(batch)
        consumer.commit()
    finally:
        consumer.close()
    return got


def test_kafka_python_produces_the_input_and_reads_the_results(
    kafka_bootstrap, make_topics, start_service
):
    topics = make_topics(2)
    svc = start_service(topics, unique("group"))
    rows = posts(300)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for r in rows:
        producer.send(
            topics.input, json.dumps(r, ensure_ascii=False).encode(), key=r["id"].encode()
        )
    producer.send(topics.input, b"not json", key=b"bad", headers=[("trace-id", b"t-1")])
    producer.flush()
    producer.close()

    out = read_with_kafka_python(kafka_bootstrap, topics.output, len(rows))
    results = {json.loads(rec.value)["id"]: rec for rec in out}
    assert sorted(results) == sorted(r["id"] for r in rows)
    for r in rows:
        rec = results[r["id"]]
        value = json.loads(rec.value)
        assert rec.key == r["id"].encode()
        assert value["label"] in ("negative", "positive")
        assert value["text"] == r["text"]
        assert dict(rec.headers)[records.H_MODEL_VERSION].decode() == value["model_version"]

    [dead] = read_with_kafka_python(kafka_bootstrap, topics.dlq, 1)
    headers = dict(dead.headers)
    assert (dead.key, dead.value) == (b"bad", b"not json")
    assert headers[records.H_REASON] == b"invalid_json"
    assert headers["trace-id"] == b"t-1"  # the original headers travel with the dead letter
    assert svc.metric("sentiment_messages_consumed_total") == len(rows) + 1


def kcat(*args: str, stdin: str | None = None) -> str:
    """Debian's kcat, run on the librdkafka that the confluent-kafka wheel bundles.

    Debian's own librdkafka (2.0.2) cannot read Tansu's ApiVersions answer ("Read underflow").
    """
    binary = shutil.which("kcat")
    if binary is None:
        pytest.skip("kcat is not installed; `make system-deps` installs it")
    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    env = dict(os.environ, LD_PRELOAD=str(next(libs.glob("librdkafka-*.so*"))))
    r = subprocess.run(
        [binary, *args], input=stdin, env=env, capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    return r.stdout


def test_kcat_produces_the_input_and_reads_the_results(kafka_bootstrap, make_topics, start_service):
    topics = make_topics(1)
    start_service(topics, unique("group"))
    rows = posts(50)
    lines = "".join(f"{r['id']}|{json.dumps(r, ensure_ascii=False)}\n" for r in rows)
    kcat("-b", kafka_bootstrap, "-P", "-t", topics.input, "-K", "|", stdin=lines)

    want = {r["id"] for r in rows}
    got: dict[str, dict] = {}
    deadline = time.monotonic() + 120
    while not want <= got.keys():  # each kcat run reads what is there now, then exits
        assert time.monotonic() < deadline, f"kcat read {len(got)} of {len(want)} results"
        out = kcat("-b", kafka_bootstrap, "-C", "-t", topics.output, "-o", "beginning", "-e", "-J")
        for line in out.splitlines():
            rec = json.loads(line)
            got[rec["key"]] = json.loads(rec["payload"])
    assert sorted(got) == sorted(want)
    assert all(got[k]["id"] == k and got[k]["label"] in ("negative", "positive") for k in got)
