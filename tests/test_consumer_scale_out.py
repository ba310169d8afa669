"""Two service processes in one group split the partitions and together label everything."""

from __future__ import annotations

import pytest

from tests.conftest import (
    committed_total,
    encode,
    ids_of,
    posts,
    produce,
    read_all,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_two_processes_split_the_partitions_and_label_everything(
    kafka_bootstrap, make_topics, start_service
):
    topics, group = make_topics(4), unique("group")
    a = start_service(topics, group, wait=False)
    b = start_service(topics, group, wait=False)
    a.wait_ready()
    b.wait_ready()

    def split() -> bool:
        # Both joined the same generation: each holds some partitions, together all of them.
        n = [a.metric("sentiment_assigned_partitions"), b.metric("sentiment_assigned_partitions")]
        return min(n) >= 1 and sum(n) == topics.partitions

    wait_for(split, 60, "both members to hold partitions")
    rows = posts(1500)
    # Keyed, so the posts hash over all four partitions; keyless ones follow librdkafka's sticky
    # partitioner, and a fast burst can land on one member's partitions only.
    produce(kafka_bootstrap, topics.input, encode(rows), keys=[r["id"].encode() for r in rows])
    wait_for(lambda: committed_total(kafka_bootstrap, group, topics.input) == len(rows), 180,
             "the group to commit the whole input")  # fmt: skip

    produced = [
        svc.metric("sentiment_results_produced_total", {"label": label})
        for svc in (a, b)
        for label in ("negative", "positive")
    ]
    per_member = [sum(produced[:2]), sum(produced[2:])]
    assert min(per_member) > 0  # both did real work
    assert sum(per_member) == len(rows)
    assert sorted(ids_of(read_all(kafka_bootstrap, topics.output))) == sorted(r["id"] for r in rows)
    assert a.stop() == 0
    assert b.stop() == 0
