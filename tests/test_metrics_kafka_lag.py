"""sentiment_consumer_lag from librdkafka statistics, and the watermark fallback.

The unit tests feed partition entries shaped like the statistics librdkafka emitted against
Tansu; the integration test runs a real consumer group on the session broker, with its input
written by kafka-python (an independent client), and checks the gauge against offsets it knows.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from consumer import kafka_stats
from consumer.embedded_broker import create_topics
from consumer.metrics import REGISTRY
from tests.conftest import FAST_GROUP, unique, wait_for

INVALID = -1001  # librdkafka's "no offset"


def _lag(topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value(
        "sentiment_consumer_lag", {"topic": topic, "partition": str(partition)}
    )


def _entry(**offsets: int) -> dict[str, Any]:
    entry = {
        "desired": True,
        "fetch_state": "active",
        "hi_offset": 50,
        "ls_offset": 50,
        "lo_offset": 0,
        "app_offset": INVALID,
        "stored_offset": INVALID,
        "committed_offset": INVALID,
        "next_offset": INVALID,
        "fetchq_cnt": 0,
        "consumer_lag": -1,
    }
    entry.update(offsets)
    return entry


def _stats(topic: str, partitions: dict[str, dict[str, Any]]) -> str:
    return json.dumps({"type": "consumer", "topics": {topic: {"partitions": partitions}}})


@pytest.mark.parametrize(
    ("offsets", "lag"),
    [
        ({"stored_offset": 30, "committed_offset": 20, "app_offset": 40}, 20),  # stored first
        ({"committed_offset": 20, "app_offset": 40}, 30),  # nothing stored since the commit
        ({"app_offset": 40}, 10),  # consumed, nothing stored or committed yet
        ({"next_offset": 50, "fetchq_cnt": 15}, 15),  # prefetched, none handed out yet
        ({"next_offset": 0}, 50),  # a fresh member at the start of a backlog
        ({"ls_offset": 45, "stored_offset": 30}, 15),  # read_committed ends at the LSO
        ({"ls_offset": INVALID, "hi_offset": 42, "stored_offset": 30}, 12),
        ({"stored_offset": 60}, 0),  # never negative
    ],
)
def test_partition_lag_uses_the_best_known_progress(offsets: dict[str, int], lag: int) -> None:
    assert kafka_stats.partition_lag(_entry(**offsets)) == lag


def test_partition_lag_is_unknown_without_an_end_or_a_position() -> None:
    assert kafka_stats.partition_lag(_entry(hi_offset=INVALID, ls_offset=INVALID)) is None
    assert kafka_stats.partition_lag(_entry()) is None


def test_handle_stats_sets_assigned_partitions_and_drops_the_rest() -> None:
    topic = unique("lag")
    kafka_stats.handle_stats(
        _stats(
            topic,
            {
                "0": _entry(stored_offset=10),
                "1": _entry(committed_offset=45),
                "2": _entry(desired=False, stored_offset=1),  # not ours any more
                "-1": _entry(desired=False),  # librdkafka's internal UA partition
            },
        )
    )
    assert _lag(topic, 0) == 40
    assert _lag(topic, 1) == 5
    assert _lag(topic, 2) is None
    assert _lag(topic, -1) is None
    # Partition 1 leaves the assignment: its series goes, it does not freeze at 5.
    kafka_stats.handle_stats(_stats(topic, {"0": _entry(stored_offset=50)}))
    assert _lag(topic, 0) == 0
    assert _lag(topic, 1) is None
    kafka_stats.forget_partitions([TopicPartition(topic, 0)])
    assert _lag(topic, 0) is None


def test_total_lag_counts_the_assigned_partitions_only() -> None:
    """What /healthz reads: revoked partitions' posts are another member's to consume."""
    topic = unique("lag")
    kafka_stats.handle_stats(
        _stats(topic, {"0": _entry(stored_offset=10), "1": _entry(committed_offset=45)})
    )
    assert kafka_stats.total_lag() == 45
    kafka_stats.forget_partitions([TopicPartition(topic, 0)])  # on_revoke / on_lost
    assert kafka_stats.total_lag() == 5
    kafka_stats.handle_stats(_stats(topic, {}))  # left the assignment without a callback
    assert kafka_stats.total_lag() == 0


def test_handle_stats_ignores_producer_stats_and_garbage() -> None:
    topic = unique("lag")
    kafka_stats.handle_stats(_stats(topic, {"0": _entry(stored_offset=10)}))
    kafka_stats.handle_stats(json.dumps({"type": "producer", "topics": {}}))
    kafka_stats.handle_stats("not json")
    assert _lag(topic, 0) == 40


@pytest.mark.integration
def test_lag_of_a_real_consumer_group(kafka_bootstrap: str) -> None:
    from kafka import KafkaProducer

    topic = unique("lag-input")
    create_topics(AdminClient({"bootstrap.servers": kafka_bootstrap}), {topic: 2})
    totals = {0: 30, 1: 20}
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for part, n in totals.items():
        for i in range(n):
            producer.send(topic, f"{part}-{i}".encode(), partition=part)
    producer.flush(30)
    producer.close()

    stats_seen: list[str] = []

    def on_stats(stats_json: str) -> None:
        stats_seen.append(stats_json)
        kafka_stats.handle_stats(stats_json)

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": unique("lag-group"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "statistics.interval.ms": 200,
            "stats_cb": on_stats,
            **FAST_GROUP,
        }
    )
    try:
        consumer.subscribe([topic])
        got: list[Message] = []
        deadline = time.monotonic() + 60
        # Until both partitions have handed out messages: a partition that has handed out none
        # counts from librdkafka's fetch state, which pause() below changes under the test.
        while len(got) < 16 or {m.partition() for m in got} != set(totals):
            assert time.monotonic() < deadline, f"consumed only {len(got)} messages"
            got += [m for m in consumer.consume(16, 1.0) if m.error() is None]
        # Results "delivered" for the first 8 only: those offsets are stored and committed.
        for m in got[:8]:
            consumer.store_offsets(message=m)
        consumer.commit(asynchronous=False)
        stored = {p: 0 for p in totals}
        position = {p: 0 for p in totals}
        for i, m in enumerate(got):
            p, nxt = m.partition() or 0, (m.offset() or 0) + 1
            position[p] = max(position[p], nxt)
            if i < 8:
                stored[p] = max(stored[p], nxt)
        assignment = consumer.assignment()
        consumer.pause(assignment)  # poll() below serves callbacks but hands out no messages

        # Statistics: lag counts from the stored offsets (at-least-once progress), else from
        # what was handed to the application. Which partitions the first 8 messages came from
        # depends on fetch timing, so the expectation follows what was consumed.
        expected = {p: totals[p] - (stored[p] if stored[p] else position[p]) for p in totals}

        def stats_agree() -> bool:
            consumer.poll(0.1)
            return all(_lag(topic, p) == expected[p] for p in totals)

        wait_for(stats_agree, 30, f"lag {expected} from statistics")
        assert stats_seen

        # Watermark fallback: high watermark minus the position, without statistics.
        kafka_stats.update_lag_from_watermarks(consumer, assignment)
        assert {p: _lag(topic, p) for p in totals} == {
            p: float(totals[p] - position[p]) for p in totals
        }
        assert position != stored  # the two measures really differ in this test
    finally:
        consumer.close()
    kafka_stats.forget_partitions([TopicPartition(topic, p) for p in totals])
    assert _lag(topic, 0) is None
