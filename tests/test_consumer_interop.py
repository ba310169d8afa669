"""An independent Kafka client, kafka-python (pure Python), feeds the service and reads it."""

from __future__ import annotations

import json
import time
import warnings

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
