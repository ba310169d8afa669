"""Delivery: a batch's records to the broker, then its offsets past it, or nothing moves.

Everything between "the batch is labelled" and "its offsets are committed" lives here, apart from
the poll loop, so it can be tested alone against a broker:

- produce with backpressure: a full local queue is drained, never dropped;
- at-least-once: wait for the broker to acknowledge every record, then store the offsets and
  commit; a record that fails fails the whole batch (`DeliveryError`) and no offset moves;
- exactly-once: the records and the offsets go in one transaction;
- rewind: seek back to a failed batch's first offsets so it is read again;
- a fresh producer after a failure (see `renew_producer`).

Metrics of a batch (results by label, dead letters by reason, end-to-end latency) are counted
once the whole batch is acknowledged, so a batch that is rewound and redone counts once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import Counter

from consumer import metrics
from consumer.records import DeadLetter, Source, now_ms

log = logging.getLogger(__name__)

# After a stop request, how long to keep waiting for the broker to acknowledge the last batch.
# Kubernetes kills the pod 30 s after SIGTERM; this, the batch in hand and the final 5 s flush
# stay well inside that even when the broker has gone away.
DRAIN_SECONDS = 15.0


class DeliveryError(Exception):
    """The broker did not take every record of a batch; the batch will be reprocessed."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to write, and the counter that counts it once its batch is acknowledged."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, Any]] | None
    counter: Counter  # a labelled child, e.g. RESULTS_PRODUCED.labels(label="positive")
    source: Source | None  # the input it answers, for end-to-end latency


class _Acks:
    """Counts one batch's outstanding and failed deliveries; one callback for every record.

    The callback takes no lock: no metric, no logging. After a fatal producer error
    confluent-kafka calls it with that exception still set, so a lock's acquire returns into a
    pending exception, the `with` never enters, and the lock stays held: the next metric update
    or log line then waits for ever. _await reports the failures instead.
    """

    __slots__ = ("failed", "first_error", "pending")

    def __init__(self) -> None:
        self.pending = 0
        self.failed = 0
        self.first_error = ""

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        self.pending -= 1
        if err is not None:
            self.failed += 1
            if not self.first_error:
                self.first_error = f"{msg.topic()}: {err}"


@dataclass
class Sent:
    """A batch handed to the producer, not yet acknowledged; see Delivery.send."""

    acks: _Acks
    offsets: list[TopicPartition]
    records: list[Outgoing]


class Delivery:
    """Owns the producer; writes batches for the poll loop and moves the consumer's offsets."""

    def __init__(
        self,
        consumer: Consumer,
        producer_config: dict[str, Any],
        *,
        dlq_topic: str,
        exactly_once: bool,
        stop: threading.Event,
        max_dead_letter_bytes: int = 65_536,
        beat: Callable[[], None] = lambda: None,
    ) -> None:
        self.consumer = consumer
        self.eos = exactly_once
        self.stop = stop
        self.beat = beat  # called while blocked, so a long wait is not taken for a hung loop
        self._config = producer_config
        self._dlq = dlq_topic
        self._dlq_max_bytes = max_dead_letter_bytes  # an oversized dead letter keeps this much
        self.producer = Producer(producer_config)

    def start(self) -> None:
        if self.eos:
            self.producer.init_transactions(30)  # also aborts what a previous incarnation left

    def poll(self) -> None:
        """Serve delivery reports; call once per turn of the poll loop."""
        self.producer.poll(0)

    def deliver(
        self, messages: Sequence[Message], records: list[Outgoing], dead: list[DeadLetter]
    ) -> None:
        """Write `records` and `dead`, then move the offsets past `messages`; raises
        DeliveryError, with no offset moved, if the broker did not take all of them."""
        self.complete(self.send(messages, records, dead))

    def send(
        self, messages: Sequence[Message], records: list[Outgoing], dead: list[DeadLetter]
    ) -> Sent:
        """Hand a batch's records to the producer without waiting for the broker; `complete`
        then waits and moves the offsets. In between, the caller can label the next batch while
        the broker acknowledges this one. One batch at a time: send, complete, send again."""
        acks = _Acks()
        if self.eos:
            self.producer.begin_transaction()
        for r in records:
            self._produce(r.topic, r.key, r.value, r.headers, acks)
        dead_records = [self._produce_dead(d, acks) for d in dead]
        self.producer.poll(0)  # serve what librdkafka has already answered
        return Sent(acks, next_offsets(messages), [*records, *dead_records])

    def complete(self, sent: Sent) -> None:
        """Wait for the broker to acknowledge a sent batch, then store and commit its offsets
        (or commit its transaction); raises DeliveryError, with no offset moved, if it did not
        take every record."""
        if self.eos:
            self._commit_transaction(sent.offsets)
        else:
            self._await(sent.acks)
            self.consumer.store_offsets(offsets=sent.offsets)
            self.commit(asynchronous=True)
        _count(sent.records)

    def abandon(self) -> None:
        """Give up on the batch sent last, which will not be completed (its partitions were
        lost). Exactly-once aborts its transaction, so that none of its records is committed and
        the next batch can begin one; at-least-once has nothing to undo."""
        if self.eos:
            _while_retriable(lambda: self.producer.abort_transaction(30))

    def commit(self, asynchronous: bool = False) -> None:
        """Commit the stored offsets (at-least-once). A failure is logged, not raised: the
        offsets stay stored for the next commit, or, if the partitions are gone, their next
        owner redoes the posts, which is no reason to crash a rebalance or a shutdown."""
        if self.eos:
            return  # offsets go in the transactions
        try:
            if asynchronous:
                self.consumer.commit(asynchronous=True)  # counted by the on_commit callback
            else:
                self.consumer.commit(asynchronous=False)
                metrics.COMMITS.inc()
        except KafkaException as e:
            if e.args[0].code() != KafkaError._NO_OFFSET:  # _NO_OFFSET: nothing new to commit
                log.error("offset commit failed: %s", e.args[0])

    def rewind(self, messages: Sequence[Message]) -> None:
        """Seek each partition of `messages` back to its first offset among them."""
        for tp in first_offsets(messages):
            try:
                self.consumer.seek(tp)
            except KafkaException as e:
                # A partition no longer ours: its next owner starts from the committed offset,
                # which is at or before this batch, so nothing is skipped.
                log.warning("cannot rewind %s[%d]: %s", tp.topic, tp.partition, e.args[0])

    def renew_producer(self) -> None:
        """A fresh producer for the retry. After timed-out deliveries an idempotent producer
        bumps its epoch, and a broker that refuses the new epoch (Tansu answers PRODUCER_FENCED)
        would fail every retry for good. A new producer id costs one request; at-least-once
        allows the duplicates a new id can no longer de-duplicate. Exactly-once keeps its
        transactional producer: the aborted transaction already fenced what it wrote."""
        if self.eos:
            return
        old, self.producer = self.producer, Producer(self._config)
        old.flush(0)  # every record of the failed batch has its answer already

    def close(self) -> None:
        self.producer.flush(5)

    def _produce_dead(self, d: DeadLetter, acks: _Acks) -> Outgoing:
        counter = metrics.DEAD_LETTERS.labels(reason=d.reason)
        out = Outgoing(self._dlq, d.key, d.value or b"", d.kafka_headers(), counter, d.source)
        try:
            self._produce(out.topic, out.key, out.value, out.headers, acks)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                raise
            # Bigger than the producer may send: a dead letter that can never be written
            # would stop the partition for good, so it keeps its head and says so.
            cut = d.truncated(self._dlq_max_bytes)
            self._produce(out.topic, cut.key, cut.value or b"", cut.kafka_headers(), acks)
        return out

    def _produce(
        self, topic: str, key: bytes | None, value: bytes, headers: Any, acks: _Acks
    ) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers, on_delivery=acks)
                acks.pending += 1
                return
            except BufferError:
                # Backpressure: the local queue is full. Serve delivery reports until it drains
                # rather than dropping or growing memory without bound.
                self.beat()
                self.producer.poll(0.1)

    def _await(self, acks: _Acks) -> None:
        """Block until the broker has answered for every record of the batch."""
        deadline: float | None = None
        while acks.pending:
            self.beat()
            self.producer.flush(1.0)
            if self.stop.is_set():
                deadline = deadline or time.monotonic() + DRAIN_SECONDS
                if time.monotonic() > deadline and acks.pending:
                    raise DeliveryError(f"{acks.pending} records unacknowledged at shutdown")
        if acks.failed:
            metrics.DELIVERY_ERRORS.inc(acks.failed)
            log.error("delivery failed for %d records, the first to %s", acks.failed,
                      acks.first_error)  # fmt: skip
            raise DeliveryError(f"{acks.failed} of the batch's records were not delivered")

    def _commit_transaction(self, offsets: list[TopicPartition]) -> None:
        meta = self.consumer.consumer_group_metadata()
        try:
            self.producer.send_offsets_to_transaction(offsets, meta, 30)
            _while_retriable(lambda: self.producer.commit_transaction(30))
            metrics.COMMITS.inc()
        except KafkaException as e:
            if not e.args[0].txn_requires_abort():
                raise
            log.error("transaction aborted (%s); the batch will be reprocessed", e)
            self.producer.abort_transaction(30)
            raise DeliveryError("transaction aborted") from e


def _while_retriable(call: Callable[[], None]) -> None:
    """Call a transactional API again for as long as it fails with a retriable error, as
    librdkafka asks of commit_transaction and abort_transaction."""
    while True:
        try:
            call()
            return
        except KafkaException as e:
            if not e.args[0].retriable():
                raise


def _count(records: list[Outgoing]) -> None:
    """Count an acknowledged batch: per counter, and each record's end-to-end latency."""
    for counter, n in Tally(r.counter for r in records).items():
        counter.inc(n)
    done = now_ms()
    for r in records:
        if r.source is not None and r.source.timestamp_ms is not None:
            metrics.END_TO_END.observe(max(done - r.source.timestamp_ms, 0) / 1e3)


def next_offsets(batch: Sequence[Message]) -> list[TopicPartition]:
    """Per partition, the offset after the last message of the batch: what to commit."""
    last: dict[tuple[str, int], int] = {}
    for m in batch:
        tp = (m.topic() or "", m.partition() or 0)
        last[tp] = max(last.get(tp, -1), m.offset() or 0)
    return [TopicPartition(t, p, off + 1) for (t, p), off in last.items()]


def first_offsets(batch: Sequence[Message]) -> list[TopicPartition]:
    """Per partition, the offset of the first message of the batch: where to rewind to."""
    first: dict[tuple[str, int], int] = {}
    for m in batch:
        tp = (m.topic() or "", m.partition() or 0)
        first[tp] = min(first.get(tp, m.offset() or 0), m.offset() or 0)
    return [TopicPartition(t, p, off) for (t, p), off in first.items()]
