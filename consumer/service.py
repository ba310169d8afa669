"""The poll loop: consume a micro-batch, label it, deliver results and dead letters, commit.

Shaped like confluent-kafka-python's examples/consumer.py and eos_transactions.py. A batch is
`consume(BATCH_MAX_SIZE, BATCH_MAX_WAIT_MS)`: bounded by size and by time, so a quiet topic
never holds a post back longer than the wait. Every message of a batch ends as a result on the
output topic or a dead letter on the DLQ topic, and the batch's offsets move only after the
broker has acknowledged all of them (at-least-once), or atomically with them in one transaction
(exactly-once); consumer.delivery does that part.

Each turn consumes batch N+1 and hands its texts to the segmenter, then labels batch N, waits
for the broker to acknowledge batch N-1 and moves its offsets, and sends batch N: with worker
processes N+1 is segmented while the model runs on N, and the broker acknowledges N-1 meanwhile.
Batches move through those stages in order, so offsets move in batch order.

Shutdown: SIGTERM and SIGINT only set the `stop` event. The loop then finishes the batch in
flight, waits for its acknowledgements, commits, leaves the group (`close()`) and returns.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from consumer import kafka_stats, metrics
from consumer.batch import decode_batch, label
from consumer.delivery import Delivery, DeliveryError, Sent
from consumer.drift import DriftMonitor
from consumer.http_server import Health
from consumer.kafka_config import kafka_configs
from consumer.records import DeadLetter, Post
from consumer.results import Results
from consumer.segmentation import Pending, make_segmenter
from consumer.settings import Settings
from consumer.shadow import Shadow
from model.predictor import Prediction, Predictor

log = logging.getLogger(__name__)


@dataclass
class Delivered:
    """A labelled batch handed to the producer, waiting for the broker's acknowledgements."""

    batch: Sent
    messages: list[Message]
    labelled: list[tuple[Post, Prediction]]
    shadow: list[Prediction] | None


@dataclass
class InFlight:
    """A consumed, decoded batch whose segmentation has been handed to the segmenter."""

    messages: list[Message]  # as consumed; their offsets move only once all are answered for
    posts: list[Post]
    dead: list[DeadLetter]
    segmented: Pending


class Service:
    def __init__(
        self,
        settings: Settings,
        predictor: Predictor,
        health: Health,
        stop: threading.Event,
        shadow: Shadow | None = None,
    ) -> None:
        self.s = settings
        self.predictor = predictor
        self.version = predictor.loaded.version
        self.health = health
        self.stop = stop
        loaded = predictor.loaded
        self.drift = DriftMonitor(
            loaded.reference, loaded.labels, settings.drift_window_size,
            settings.drift_window_seconds, max_len=loaded.max_len,
        )  # fmt: skip
        consumer_cfg, producer_cfg = kafka_configs(settings)
        consumer_cfg["on_commit"] = _on_commit
        self.consumer = Consumer(consumer_cfg)
        self.delivery = Delivery(
            self.consumer, producer_cfg, dlq_topic=settings.dlq_topic,
            exactly_once=settings.processing_guarantee == "exactly-once", stop=stop,
            beat=health.beat, max_dead_letter_bytes=settings.max_message_bytes,
        )  # fmt: skip
        self.segmenter = make_segmenter(loaded, settings.tokenizer_processes)
        self.shadow = shadow
        self.results = Results(settings, predictor.labels, self.version,
                               shadow.version if shadow is not None else None)  # fmt: skip
        self._inflight: InFlight | None = None
        self._sent: Delivered | None = None  # sent to the broker, not yet acknowledged
        # Without librdkafka statistics, lag comes from the cached watermarks.
        self.lag = (
            None if settings.statistics_interval_ms else kafka_stats.WatermarkLag(self.consumer)
        )

    def run(self) -> None:
        """Run until `stop` is set; raises KafkaException on a fatal client error."""
        self.delivery.start()
        self.consumer.subscribe(
            [self.s.input_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            while not self.stop.is_set():
                self.health.beat()
                self.delivery.poll()
                t0 = time.perf_counter()
                # With a batch in flight, take only what has already arrived: waiting for more
                # would hold the finished batch's results back on a quiet topic.
                busy = self._inflight is not None or self._sent is not None
                wait = 0.0 if busy else self.s.batch_max_wait_ms / 1e3
                msgs = self.consumer.consume(self.s.batch_max_size, wait)
                batch = [m for m in msgs if _usable(m)]
                if batch:
                    metrics.BATCH_WAIT.observe(time.perf_counter() - t0)
                    metrics.BATCH_SIZE.observe(len(batch))
                    metrics.MESSAGES_CONSUMED.inc(len(batch))
                    posts, dead = decode_batch(batch, self.s)
                    pending = self.segmenter.submit([p.text for p in posts])
                    self._advance(InFlight(batch, posts, dead, pending))
                else:
                    if self._inflight is None:
                        self.drift.update([])  # lets the time bound age the window when idle
                    self._advance(None)
                if self.lag is not None:
                    self.lag.tick()
        finally:
            self.health.stopping = True
            log.info("stopping: finishing the batch in flight, committing, leaving the group")
            try:
                self._advance(None)
                self._advance(None)  # the last batch: labelled and sent, then acknowledged
                self.delivery.commit()
            finally:
                self.consumer.close()  # leaves the group at once, so the partitions move now
                self.delivery.close()
                self.segmenter.close()

    def _advance(self, pending: InFlight | None) -> None:
        """Put `pending` in flight; label the batch that was in flight before; complete the
        batch sent before that; send the one just labelled.

        The drift window and the shadow figures take a batch's predictions only once the batch
        is acknowledged: a batch that fails and is read again must count once, not twice.
        """
        previous, self._inflight = self._inflight, pending
        sent, self._sent = self._sent, None
        try:
            labelled: list[tuple[Post, Prediction]] = []
            shadow = None
            if previous is not None:
                rows, seconds = previous.segmented.result(self.health.beat)
                metrics.PREPROCESS.observe(seconds)
                labelled, encoded, dead = label(
                    self.predictor, previous.posts, rows, self.s.explain_top_k
                )
                if self.shadow is not None:
                    shadow = self.shadow.score([p.text for p, _ in labelled], encoded)
            if sent is not None:  # the broker has had the model's time to acknowledge it
                self.delivery.complete(sent.batch)
                self._count(sent)
            if previous is not None:
                records = self.results.records(labelled, shadow)
                batch = self.delivery.send(previous.messages, records, previous.dead + dead)
                self._sent = Delivered(batch, previous.messages, labelled, shadow)
        except DeliveryError as e:
            # Everything behind the failed batch is dropped too: storing its offsets would skip
            # past the failed one on partitions they share.
            log.error("%s; rewinding to the batch's first offsets", e)
            redo = (sent.messages if sent is not None else []) + (
                previous.messages if previous is not None else [])  # fmt: skip
            self.delivery.rewind(redo + self._discard_inflight())
            self.delivery.renew_producer()
        except BaseException:
            # Whatever stops the loop, the batch behind an undelivered one must never be
            # delivered and committed on the way out.
            self._discard_inflight()
            raise

    def _count(self, done: Delivered) -> None:
        live = [pred for _, pred in done.labelled]
        self.drift.update(live)
        if self.shadow is not None and done.shadow is not None:
            self.shadow.update(live, done.shadow)
        if self.predictor.device.type == "cuda":
            import torch

            metrics.GPU_MEMORY.set(torch.cuda.memory_allocated(self.predictor.device))

    def _discard_inflight(self) -> list[Message]:
        """Forget the batch in flight, unlabelled, and any batch sent and not acknowledged;
        returns their messages so they can be redone."""
        inflight, self._inflight = self._inflight, None
        sent, self._sent = self._sent, None
        return (sent.messages if sent is not None else []) + (
            inflight.messages if inflight is not None else [])  # fmt: skip

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
        self._advance(None)
        self.delivery.commit()
        metrics.ASSIGNED_PARTITIONS.set(0)
        kafka_stats.forget_partitions(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s without a clean revoke", _names(partitions))
        # Lost partitions cannot take offsets any more and their next owner redoes them; the
        # in-flight batch's other partitions, if any are still ours, are rewound.
        gone = {(tp.topic, tp.partition) for tp in partitions}
        dropped = self._discard_inflight()
        self.delivery.rewind([m for m in dropped if (m.topic(), m.partition()) not in gone])
        self.health.in_group = False  # not ready until the group assigns partitions again
        metrics.REBALANCES.inc()
        metrics.ASSIGNED_PARTITIONS.set(0)
        kafka_stats.forget_partitions(partitions)


def _usable(msg: Message) -> bool:
    err = msg.error()
    if err is None:
        return True
    if err.fatal():
        raise KafkaException(err)
    log.warning("consumer error: %s", err)
    return False


def _on_commit(err: KafkaError | None, partitions: list[TopicPartition]) -> None:
    if err is None:
        metrics.COMMITS.inc()
    elif err.code() != KafkaError._NO_OFFSET:  # nothing new to commit
        log.warning("offset commit failed: %s", err)


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
