"""The poll loop: consume a micro-batch, label it, produce results and dead letters, commit.

Shaped like confluent-kafka-python's examples/consumer.py and eos_transactions.py. A batch is
`consume(BATCH_MAX_SIZE, BATCH_MAX_WAIT_MS)`: bounded by size and by time, so a quiet topic
never holds a post back longer than the wait. Every message of a batch ends as a result on the
output topic or a dead letter on the DLQ topic, and the batch's offsets move only after the
broker has acknowledged all of them (at-least-once), or atomically with them in one transaction
(exactly-once).

Shutdown: SIGTERM and SIGINT only set the `stop` event. The loop then finishes the batch in
hand, waits for its acknowledgements, commits, leaves the group (`close()`) and returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from consumer import kafka_stats, metrics
from consumer.batch import decode_batch, encode_posts, infer, sort_encoded
from consumer.delivery import Acks, DeliveryError, first_offsets, next_offsets
from consumer.drift import DriftMonitor
from consumer.http_server import Health
from consumer.kafka_config import kafka_configs
from consumer.records import H_MODEL_VERSION, DeadLetter, Post, now_ms, result_value
from consumer.settings import Settings
from consumer.tokenizer_pool import EncodedBatch, TokenizerPool
from model.encoding import Encoded
from model.predictor import Prediction, Predictor

log = logging.getLogger(__name__)

# After a stop request, how long to keep waiting for the broker to acknowledge the last batch.
# Kubernetes kills the pod 30 s after SIGTERM; this, the batch in hand and the final 5 s flush
# stay well inside that even when the broker has gone away.
DRAIN_SECONDS = 15.0


@dataclass
class InFlight:
    """A consumed, decoded batch whose segmentation has been started but not yet used."""

    messages: list[Message]  # as consumed; their offsets move only once all are answered for
    posts: list[Post]
    dead: list[DeadLetter]
    encoded: EncodedBatch | None  # None: segment in the poll loop's thread when its turn comes


class Service:
    def __init__(
        self, settings: Settings, predictor: Predictor, health: Health, stop: threading.Event
    ) -> None:
        self.s = settings
        self.predictor = predictor
        self.version = predictor.loaded.version
        self.health = health
        self.stop = stop
        self.eos = settings.processing_guarantee == "exactly-once"
        loaded = predictor.loaded
        self.drift = DriftMonitor(
            loaded.reference, loaded.labels, settings.drift_window_size,
            settings.drift_window_seconds, max_len=loaded.max_len,
        )  # fmt: skip
        consumer_cfg, producer_cfg = kafka_configs(settings)
        consumer_cfg["on_commit"] = self._on_commit
        self.consumer = Consumer(consumer_cfg)
        self._producer_cfg = producer_cfg
        self.producer = Producer(producer_cfg)
        # Worker processes segment batch N+1 while this thread runs the model on batch N.
        self._pool: TokenizerPool | None = None
        if settings.tokenizer_processes:
            self._pool = TokenizerPool(predictor.loaded, settings.tokenizer_processes)
            self._pool.warm_up()
        self._inflight: InFlight | None = None

    def run(self) -> None:
        """Run until `stop` is set; raises KafkaException on a fatal client error."""
        if self.eos:
            self.producer.init_transactions(30)  # also aborts what a previous incarnation left
        self.consumer.subscribe(
            [self.s.input_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            while not self.stop.is_set():
                self.health.beat()
                self.producer.poll(0)
                t0 = time.perf_counter()
                # With a batch in flight, take only what has already arrived: waiting for more
                # would hold the finished batch's results back on a quiet topic.
                wait = 0.0 if self._inflight is not None else self.s.batch_max_wait_ms / 1e3
                msgs = self.consumer.consume(self.s.batch_max_size, wait)
                batch = [m for m in msgs if self._usable(m)]
                if not batch:
                    if self._inflight is None:
                        self.drift.update([])  # lets the time bound age the window when idle
                    self._advance(None)  # nothing new: deliver the batch in flight now
                    continue
                metrics.BATCH_WAIT.observe(time.perf_counter() - t0)
                metrics.BATCH_SIZE.observe(len(batch))
                metrics.MESSAGES_CONSUMED.inc(len(batch))
                posts, dead = decode_batch(batch, self.s)
                encoded = self._pool.submit([p.text for p in posts]) if self._pool else None
                self._advance(InFlight(batch, posts, dead, encoded))
                if self._pool is None:
                    self._advance(None)
        finally:
            self.health.stopping = True
            log.info("stopping: finishing the batch in flight, committing, leaving the group")
            try:
                self._advance(None)
                if not self.eos:
                    self._commit(asynchronous=False)
            finally:
                self.consumer.close()  # leaves the group at once, so the partitions move now
                self.producer.flush(5)
                if self._pool is not None:
                    self._pool.close()

    def _advance(self, pending: InFlight | None) -> None:
        """Put `pending` in flight, then label and deliver the batch that was in flight before.

        The order is what overlaps the work: the pool segments batch N+1 while this thread runs
        the model on batch N, produces its results, waits for their acknowledgements and stores
        its offsets. Offsets stay in batch order, since batch N is delivered and stored before
        batch N+1 is labelled.
        """
        previous, self._inflight = self._inflight, pending
        if previous is None:
            return
        try:
            kept, dead = self._segmented(previous)
            labelled, more_dead = infer(self.predictor, kept, self.s.explain_top_k)
            self._deliver(previous.messages, labelled, previous.dead + dead + more_dead)
        except DeliveryError as e:
            # The batch behind it is dropped too: storing its offsets would skip past the
            # failed one on partitions they share.
            dropped = self._discard_inflight()
            log.error("%s; rewinding to the batch's first offsets", e)
            self._rewind(previous.messages + dropped)
            if not self.eos:
                self._renew_producer()
        except BaseException:
            # Whatever stops the loop, the batch behind an undelivered one must never be
            # delivered and committed on the way out.
            self._discard_inflight()
            raise

    def _renew_producer(self) -> None:
        """A fresh producer for the retry. After timed-out deliveries an idempotent producer
        bumps its epoch, and a broker that refuses the new epoch (Tansu answers PRODUCER_FENCED)
        would fail every retry for good. A new producer id costs one request; at-least-once
        allows the duplicates a new id can no longer de-duplicate."""
        old, self.producer = self.producer, Producer(self._producer_cfg)
        old.flush(0)  # every record of the failed batch has its answer already

    def _segmented(self, batch: InFlight) -> tuple[list[tuple[Post, Encoded]], list[DeadLetter]]:
        if batch.encoded is None:
            return encode_posts(self.predictor, batch.posts)
        while not batch.encoded.wait(1.0):
            self.health.beat()  # a long batch is not a hung loop
        encoded, seconds = batch.encoded.result()
        metrics.PREPROCESS.observe(seconds)
        return sort_encoded(batch.posts, encoded)

    def _discard_inflight(self) -> list[Message]:
        """Forget the batch in flight, unlabelled; returns its messages so they can be redone."""
        inflight, self._inflight = self._inflight, None
        return inflight.messages if inflight is not None else []

    def _usable(self, msg: Message) -> bool:
        err = msg.error()
        if err is None:
            return True
        if err.fatal():
            raise KafkaException(err)
        log.warning("consumer error: %s", err)
        return False

    def _deliver(
        self,
        batch: list[Message],
        labelled: list[tuple[Post, Prediction]],
        dead: list[DeadLetter],
    ) -> None:
        """Produce a batch's results and dead letters, then move its offsets past it."""
        self.drift.update([pred for _, pred in labelled])
        if self.predictor.device.type == "cuda":
            import torch

            metrics.GPU_MEMORY.set(torch.cuda.memory_allocated(self.predictor.device))

        acks = Acks()
        if self.eos:
            self.producer.begin_transaction()
        done_at = now_ms()
        version = [(H_MODEL_VERSION, self.version.encode())]
        for post, pred in labelled:
            value = result_value(post, pred, self.version, done_at)
            cb = acks.track(metrics.RESULTS_PRODUCED.labels(label=pred.label), post.source)
            self._produce(self.s.output_topic, post.key, value, version, cb)
        for d in dead:
            cb = acks.track(metrics.DEAD_LETTERS.labels(reason=d.reason), d.source)
            try:
                self._produce(self.s.dlq_topic, d.key, d.value, d.kafka_headers(), cb)
            except KafkaException as e:
                if e.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                    raise
                # Bigger than the producer may send: a dead letter that can never be written
                # would stop the partition for good, so it keeps its head and says so.
                cut = d.truncated(self.s.max_message_bytes)
                self._produce(self.s.dlq_topic, cut.key, cut.value, cut.kafka_headers(), cb)

        offsets = next_offsets(batch)
        if self.eos:
            self._commit_transaction(offsets)
            return
        self._await(acks)
        self.consumer.store_offsets(offsets=offsets)
        self._commit(asynchronous=True)

    def _produce(self, topic: str, key: Any, value: Any, headers: Any, cb: Callable) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers, on_delivery=cb)
                return
            except BufferError:
                # Backpressure: the local queue is full. Serve delivery reports until it drains
                # rather than dropping or growing memory without bound.
                self.health.beat()
                self.producer.poll(0.1)

    def _await(self, acks: Acks) -> None:
        """Block until the broker has answered for every record of the batch."""
        deadline: float | None = None
        while acks.pending:
            self.health.beat()
            self.producer.flush(1.0)
            if self.stop.is_set():
                deadline = deadline or time.monotonic() + DRAIN_SECONDS
                if time.monotonic() > deadline and acks.pending:
                    raise DeliveryError(f"{acks.pending} records unacknowledged at shutdown")
        if acks.failed:
            raise DeliveryError(f"{acks.failed} of the batch's records were not delivered")

    def _commit_transaction(self, offsets: list[TopicPartition]) -> None:
        meta = self.consumer.consumer_group_metadata()
        try:
            self.producer.send_offsets_to_transaction(offsets, meta, 30)
            while True:
                try:
                    self.producer.commit_transaction(30)
                    break
                except KafkaException as e:
                    if not e.args[0].retriable():
                        raise
            metrics.COMMITS.inc()
        except KafkaException as e:
            if not e.args[0].txn_requires_abort():
                raise
            log.error("transaction aborted (%s); the batch will be reprocessed", e)
            self.producer.abort_transaction(30)
            raise DeliveryError("transaction aborted") from e

    def _commit(self, asynchronous: bool) -> None:
        """Commit the stored offsets. A failure is logged, not raised: the offsets stay stored
        for the next commit, or, if the partitions are gone, their next owner redoes the posts
        (at-least-once), which is no reason to crash a rebalance or a shutdown."""
        try:
            if asynchronous:
                self.consumer.commit(asynchronous=True)
            else:
                self.consumer.commit(asynchronous=False)
                metrics.COMMITS.inc()
        except KafkaException as e:
            if e.args[0].code() != KafkaError._NO_OFFSET:  # _NO_OFFSET: nothing new to commit
                log.error("offset commit failed: %s", e.args[0])

    def _rewind(self, batch: list[Message]) -> None:
        for tp in first_offsets(batch):
            try:
                self.consumer.seek(tp)
            except KafkaException as e:
                # A partition no longer ours: its next owner starts from the committed offset,
                # which is at or before this batch, so nothing is skipped.
                log.warning("cannot rewind %s[%d]: %s", tp.topic, tp.partition, e.args[0])

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is None:
            metrics.COMMITS.inc()
        elif err.code() != KafkaError._NO_OFFSET:
            log.warning("offset commit failed: %s", err)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", _names(partitions))
        metrics.REBALANCES.inc()
        metrics.ASSIGNED_PARTITIONS.set(len(partitions))
        self.health.in_group = True

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # This runs inside consume(), when at most one batch is in flight: delivering it first
        # and then committing hands the partitions over with nothing redone.
        log.info("revoked %s", _names(partitions))
        metrics.REBALANCES.inc()
        self._advance(None)
        if not self.eos:
            self._commit(asynchronous=False)
        metrics.ASSIGNED_PARTITIONS.set(0)
        kafka_stats.forget_partitions(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s without a clean revoke", _names(partitions))
        # Lost partitions cannot take offsets any more and their next owner redoes them; the
        # in-flight batch's other partitions, if any are still ours, are rewound.
        gone = {(tp.topic, tp.partition) for tp in partitions}
        dropped = self._discard_inflight()
        self._rewind([m for m in dropped if (m.topic(), m.partition()) not in gone])
        self.health.in_group = False  # not ready until the group assigns partitions again
        metrics.REBALANCES.inc()
        metrics.ASSIGNED_PARTITIONS.set(0)
        kafka_stats.forget_partitions(partitions)


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
