"""The broker stopped cleanly (SIGINT) mid-stream and started again on the same data directory
and port: the service reconnects by itself and every post gets a result, in both delivery modes.

Broker: a noida-db of each test's own (tests/noida_broker.py), because it keeps its data across
a restart; Tansu keeps nothing.

- The stop lands between the two parts of the stream, once the first part is committed: the
  service is connected, in its group, its producer (in exactly-once, its transactions) live, and
  nothing is in flight. It stays down until the service has seen its connections refused. A
  noida-db 0.2.3 stopped mid-write can drop records it has already acknowledged
  (tests/test_noida_broker.py); the service's idempotent producer then stops with a fatal
  out-of-order-sequence error and the service exits 1, to be restarted. A Kafka broker's clean
  shutdown keeps what it acknowledged.
- noida-db forgets the group's members across the restart, so the service loses its partitions
  without a revoke and is assigned them again; in exactly-once that aborts the transaction of a
  batch sent and not completed (Delivery.abandon), and the transactional producer does not
  re-bootstrap, which with librdkafka 2.16 left it waiting for ever (consumer/kafka_config.py).
- At-least-once can repeat the batches it handled after the restart and before the group told
  it its membership was gone: their commits fail, and they are read again. Exactly-once results
  are read with read_committed from offset 0 (conftest.read_all), as in
  tests/test_consumer_exactly_once.py, and must be there exactly once.
"""

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
from tests.noida_broker import NOIDA_GROUP, NoidaBroker

pytestmark = pytest.mark.integration

N = 1600


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_broker_restarted_mid_stream_the_service_reconnects_and_every_post_has_a_result(
    tmp_path, make_topics, start_service, guarantee
):
    broker = NoidaBroker(tmp_path / "noida")
    broker.start()
    try:
        topics, group = make_topics(3, bootstrap=broker.bootstrap), unique("group")
        eos = guarantee == "exactly-once"
        svc = start_service(topics, group, bootstrap=broker.bootstrap, kafka_config=NOIDA_GROUP,
                            processing_guarantee=guarantee,
                            **({"transactional_id": unique("txn")} if eos else {}))  # fmt: skip
        rows = posts(N)
        produce(broker.bootstrap, topics.input, encode(rows[: N // 2]))
        wait_for(lambda: committed_total(broker.bootstrap, group, topics.input) == N // 2, 120,
                 "the first part to be committed")  # fmt: skip

        broker.stop()
        wait_for(lambda: "Connection refused" in svc.log(), 30,
                 "the service to find the broker gone")  # fmt: skip
        broker.start()  # the same data directory and port
        assert svc.proc.poll() is None
        produce(broker.bootstrap, topics.input, encode(rows[N // 2 :]))
        wait_for(lambda: committed_total(broker.bootstrap, group, topics.input) == N, 180,
                 "the service to commit the whole input after the restart")  # fmt: skip
        assert svc.stop() == 0

        ids = ids_of(read_all(broker.bootstrap, topics.output, read_committed=eos))
        want = [r["id"] for r in rows]
        lost, duplicates = len(set(want) - set(ids)), len(ids) - len(set(ids))
        print(f"{guarantee}, broker restarted: {len(ids)} results for {N} posts, "
              f"{lost} lost, {duplicates} duplicates")  # fmt: skip
        assert set(ids) == set(want)  # nothing lost
        if eos:
            assert sorted(ids) == sorted(want)  # and nothing twice
    finally:
        broker.stop()
