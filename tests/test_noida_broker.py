"""noida-db's transactions and restarts, without the service: what the exactly-once and
broker-restart tests rely on, and the broker's faults they step around.

Broker: noida-db (tests/noida_broker.py), the session's `noida_bootstrap` or one of a test's own.
Each log here is written by plain clients: a transactional producer that commits, aborts, and is
fenced with a transaction open (what a SIGKILLed service leaves behind), then a non-transactional
end marker, so that every reader stops on a condition.

What holds (the exactly-once tests build on it):
- a read_committed reader from offset 0 sees exactly the committed records, whether it is
  assigned its partitions or joins a fresh group with auto.offset.reset=earliest, with
  librdkafka or with kafka-python;
- the offsets a transaction sends to a group move only if it commits.

The broker's faults (xfail; each turns into a failure, XPASS strict, once a noida-db release
fixes it, so the workarounds in the tests can go):
- a read_committed fetch that starts after an aborted transaction's end is still told about it,
  and drops the same producer's later committed records: librdkafka and kafka-python alike. This
  is what the issue's report saw: a reader in a fresh group, or one following the output while it
  was written, counted 4,755-5,046 of 6,000 results that a reader from offset 0 all found. The
  service did not lose them.
- a SIGINT that lands while records are being written can leave records it already acknowledged
  out of the file it saves (not every time: it depends on what is in flight).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from consumer.embedded_broker import create_topics
from tests.conftest import unique
from tests.noida_broker import NOIDA_GROUP, NoidaBroker

pytestmark = pytest.mark.integration

END = b"end"  # the last record of every log here, from a non-transactional producer


def transactional_log(bootstrap: str, topic: str) -> tuple[list[bytes], list[bytes]]:
    """One partition: committed, aborted, committed, a transaction left open by a producer that
    is then fenced by its successor (which aborts it), committed, END. Returns the committed and
    the aborted values, in log order."""
    txn = unique("txn")
    committed: list[bytes] = []
    aborted: list[bytes] = []

    def write(p: Producer, name: str) -> list[bytes]:
        values = [f"{name}-{i}".encode() for i in range(10)]
        for v in values:
            p.produce(topic, v, partition=0)
        assert p.flush(30) == 0
        return values

    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn})
    p.init_transactions(30)
    for name, commit in (("c1", True), ("a1", False), ("c2", True)):
        p.begin_transaction()
        (committed if commit else aborted).extend(write(p, name))
        p.commit_transaction(30) if commit else p.abort_transaction(30)
    p.begin_transaction()
    aborted.extend(write(p, "open"))  # never ended: as a SIGKILLed service leaves it
    successor = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn})
    successor.init_transactions(30)  # fences `p` and aborts its open transaction
    successor.begin_transaction()
    committed.extend(write(successor, "c3"))
    successor.commit_transaction(30)
    plain = Producer({"bootstrap.servers": bootstrap})
    plain.produce(topic, END, partition=0)
    assert plain.flush(30) == 0
    return committed, aborted


def read_confluent(bootstrap: str, topic: str, start: int, subscribe: bool = False) -> list[bytes]:
    """read_committed with librdkafka from `start` (assigned), or joining a fresh group that
    starts from the earliest offset (subscribe); until END."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", **NOIDA_GROUP})  # fmt: skip
    if subscribe:
        c.subscribe([topic])
    else:
        c.assign([TopicPartition(topic, 0, start)])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while END not in got:
            assert time.monotonic() < deadline, f"END not read; got {len(got)} records"
            got += [m.value() or b"" for m in c.consume(100, 0.5) if m.error() is None]
    finally:
        c.close()
    return got[:-1]


def read_kafka_python(bootstrap: str, topic: str, start: int) -> list[bytes]:
    """read_committed with kafka-python, an independent implementation of the protocol."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KafkaTopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                      enable_auto_commit=False, group_id=None)  # fmt: skip
    tp = KafkaTopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, start)
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while END not in got:
            assert time.monotonic() < deadline, f"END not read; got {len(got)} records"
            for records in c.poll(timeout_ms=500).values():
                got += [r.value for r in records]
    finally:
        c.close()
    return got[:-1]


def offsets_of(bootstrap: str, topic: str) -> dict[bytes, int]:
    """Every record's offset, aborted ones included (read_uncommitted)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader")})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    where: dict[bytes, int] = {}
    deadline = time.monotonic() + 60
    try:
        while END not in where:
            assert time.monotonic() < deadline
            for m in c.consume(100, 0.5):
                if m.error() is None:
                    where[m.value() or b""] = m.offset() or 0
    finally:
        c.close()
    return where


READERS: dict[str, Callable[[str, str, int], list[bytes]]] = {
    "librdkafka assigned": read_confluent,
    "librdkafka in a fresh group": lambda b, t, s: read_confluent(b, t, s, subscribe=True),
    "kafka-python assigned": read_kafka_python,
}


@pytest.fixture
def log_topic(noida_bootstrap: str) -> tuple[str, list[bytes], list[bytes]]:
    topic = unique("txlog")
    create_topics(AdminClient({"bootstrap.servers": noida_bootstrap}), {topic: 1})
    committed, aborted = transactional_log(noida_bootstrap, topic)
    return topic, committed, aborted


@pytest.mark.parametrize("reader", list(READERS))
def test_read_committed_from_the_start_sees_exactly_the_committed_records(
    noida_bootstrap, log_topic, reader
):
    topic, committed, _ = log_topic
    assert READERS[reader](noida_bootstrap, topic, 0) == committed


def test_a_transactions_offsets_reach_the_group_only_if_it_commits(noida_bootstrap):
    """send_offsets_to_transaction, then abort, or be fenced with the transaction open: the
    group's committed offset stays where the last committed transaction put it."""
    topic, group, txn = unique("in"), unique("group"), unique("txn")
    admin = AdminClient({"bootstrap.servers": noida_bootstrap})
    create_topics(admin, {topic: 1})
    member = Consumer({"bootstrap.servers": noida_bootstrap, "group.id": group})

    def committed_offset() -> int:
        tp = member.committed([TopicPartition(topic, 0)], timeout=10)[0]
        return int(tp.offset)

    def transaction(p: Producer, offset: int) -> None:
        p.begin_transaction()
        p.send_offsets_to_transaction(
            [TopicPartition(topic, 0, offset)], member.consumer_group_metadata(), 30
        )

    try:
        p = Producer({"bootstrap.servers": noida_bootstrap, "transactional.id": txn})
        p.init_transactions(30)
        transaction(p, 10)
        p.commit_transaction(30)
        assert committed_offset() == 10
        transaction(p, 20)
        p.abort_transaction(30)
        assert committed_offset() == 10
        transaction(p, 30)  # left open; its successor fences it and aborts the transaction
        Producer({"bootstrap.servers": noida_bootstrap, "transactional.id": txn}).init_transactions(
            30
        )
        assert committed_offset() == 10
    finally:
        member.close()


@pytest.mark.xfail(
    strict=True,
    reason="noida-db 0.2.3 lists an aborted transaction in every later read_committed fetch "
    "response, even one that starts after the transaction's abort marker; the client then "
    "takes the producer's later committed records for aborted ones and drops them",
)
@pytest.mark.parametrize("reader", ["librdkafka assigned", "kafka-python assigned"])
def test_a_fetch_that_starts_after_an_aborted_transaction_keeps_later_committed_records(
    noida_bootstrap, log_topic, reader
):
    topic, committed, _ = log_topic
    start = offsets_of(noida_bootstrap, topic)[b"c2-0"]  # just past the first abort marker
    got = READERS[reader](noida_bootstrap, topic, start)
    want = committed[committed.index(b"c2-0") :]
    lost = len(set(want) - set(got))
    print(f"{reader} from offset {start}: {len(got)} of {len(want)} committed records, {lost} lost")
    assert got == want


@pytest.mark.xfail(
    strict=False,  # it passes when no write happens to be in flight at the stop
    reason="noida-db 0.2.3 can leave records it has acknowledged out of the file it saves when "
    "SIGINT lands while they are written",
)
def test_a_clean_stop_while_records_are_written_keeps_every_acknowledged_record(tmp_path):
    broker = NoidaBroker(tmp_path / "noida")
    broker.start()
    try:
        create_topics(AdminClient({"bootstrap.servers": broker.bootstrap}), {"t": 1})
        acked: set[bytes] = set()
        stop = threading.Event()

        def write() -> None:
            # Not idempotent: an idempotent producer would stop with a fatal sequence error at
            # the first record the broker forgot, which hides how many there were.
            p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})

            def on_delivery(err: object, msg: object) -> None:
                if err is None:
                    acked.add(msg.value())  # type: ignore[attr-defined]

            i = 0
            while not stop.is_set():
                try:
                    p.produce("t", f"m{i}".encode(), partition=0, on_delivery=on_delivery)
                    i += 1
                except BufferError:
                    p.poll(0.05)
                p.poll(0)
            assert p.flush(60) == 0

        writer = threading.Thread(target=write)
        writer.start()
        deadline = time.monotonic() + 60
        while len(acked) < 20_000 and time.monotonic() < deadline:
            time.sleep(0.01)
        broker.stop()  # mid-write: the writer keeps producing into the outage
        broker.start()
        while len(acked) < 40_000 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        writer.join(90)
        assert len(acked) >= 40_000

        plain = Producer({"bootstrap.servers": broker.bootstrap})
        plain.produce("t", END, partition=0)
        assert plain.flush(30) == 0
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("reader")})
        c.assign([TopicPartition("t", 0, OFFSET_BEGINNING)])
        stored: set[bytes] = set()
        try:
            while END not in stored:
                assert time.monotonic() < deadline + 60
                stored |= {m.value() or b"" for m in c.consume(10_000, 0.5) if m.error() is None}
        finally:
            c.close()
        lost = acked - stored
        print(f"{len(acked)} acknowledged, {len(lost)} of them not in the log after the restart")
        assert not lost
    finally:
        broker.stop()
