"""The poll loop: consume a micro-batch, label it, deliver results and dead letters, commit.

Shaped like confluent-kafka-python's examples/consumer.py and eos_transactions.py. One turn
serves the producer's delivery callbacks (`poll(0)`); consumes batch N+1 with
`consume(BATCH_MAX_SIZE, BATCH_MAX_WAIT_MS)`, bounded by size and by time so that a quiet topic
never holds a post back, decodes it and hands its texts to the segmenter; labels batch N (the
model, explanations, the shadow candidate); waits for the broker to acknowledge batch N-1 and
moves its offsets; and sends batch N. With worker processes N+1 is segmented while the model
runs on N. Every message ends as a result or a dead letter, and offsets move in batch order,
only once the broker has acknowledged all of a batch's records (at-least-once) or atomically
with them in one transaction (exactly-once); consumer.delivery does that part.

Shutdown: SIGTERM and SIGINT only set the `stop` event. The loop then finishes the batch in
flight, waits for its acknowledgements, commits, leaves the group (`close()`) and returns.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from consumer import kafka_stats, metrics
from consumer.batch import decode_batch, label
from consumer.delivery import Delivery, DeliveryError, Sent
from consumer.drift_monitor import DriftMonitor
from consumer.http_server import Health
from consumer.records import DeadLetter, Post, Reader
from consumer.results import Results
from consumer.segmentation import Pending, Segmenter
from consumer.settings import Settings
from consumer.shadow import Shadow
from model.predictor import Prediction, Predictor

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """A micro-batch on its way: decoded and being segmented, then labelled, then sent."""

    messages: list[Message]  # as consumed; their offsets move only once all are answered for
    posts: list[Post]
    dead: list[DeadLetter]
    segmented: Pending
    labelled: list[tuple[Post, Prediction]] = field(default_factory=list)
    shadow: list[Prediction] | None = None  # the shadow candidate's, beside `labelled`
    acks: Sent = field(init=False)  # set once it is sent: what the broker has to acknowledge


@dataclass
class Service:
    """The loop and what it drives; consumer.__main__ builds them."""

    s: Settings
    consumer: Consumer
    delivery: Delivery
    segmenter: Segmenter
    predictor: Predictor
    shadow: Shadow | None
    results: Results
    drift: DriftMonitor
    lag: kafka_stats.WatermarkLag | None  # None where librdkafka's statistics give the lag
    health: Health
    stop: threading.Event
    read: Reader | None = None  # SENTIMENT_INPUT_FORMAT avro or json_schema
    _inflight: Batch | None = field(default=None, init=False)  # being segmented
    _sent: Batch | None = field(default=None, init=False)  # not acknowledged yet

    def run(self) -> None:
        """Run until `stop` is set; raises KafkaException on a fatal client error."""
        self.delivery.start()
        self.consumer.subscribe([self.s.input_topic], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)  # fmt: skip
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
                    self.health.progress()
                    metrics.BATCH_WAIT.observe(time.perf_counter() - t0)
                    metrics.BATCH_SIZE.observe(len(batch))
                    metrics.MESSAGES_CONSUMED.inc(len(batch))
                    posts, dead = decode_batch(batch, self.s, self.read)
                    pending = self.segmenter.submit([p.text for p in posts])
                    self._advance(Batch(batch, posts, dead, pending))
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
                self._drain()
            finally:
                self.consumer.close()  # leaves the group at once, so the partitions move now
                self.delivery.close()
                self.segmenter.close()

    def _advance(self, pending: Batch | None) -> None:
        """Put `pending` in flight; label the batch that was in flight before; complete the
        batch sent before that; send the one just labelled.

        The drift window and the shadow figures take a batch's predictions only once the batch
        is acknowledged: a batch that fails and is read again must count once, not twice.
        """
        previous, self._inflight = self._inflight, pending
        sent, self._sent = self._sent, None
        try:
            if previous is not None:
                rows, seconds = previous.segmented.result(self.health.beat)
                metrics.PREPROCESS.observe(seconds)
                labelled, encoded, dead = label(
                    self.predictor, previous.posts, rows, self.s.explain_top_k
                )
                previous.labelled, previous.dead = labelled, previous.dead + dead
                if self.shadow is not None:
                    previous.shadow = self.shadow.score([p.text for p, _ in labelled], encoded)
            if sent is not None:  # the broker has had the model's time to acknowledge it
                self.delivery.complete(sent.acks)
                self.health.progress()
                live = [pred for _, pred in sent.labelled]
                self.drift.update(live)
                if self.shadow is not None and sent.shadow is not None:
                    self.shadow.update(live, sent.shadow)
            if previous is not None:
                records = self.results.records(previous.labelled, previous.shadow)
                previous.acks = self.delivery.send(previous.messages, records, previous.dead)
                self._sent = previous
        except DeliveryError as e:
            # Everything behind the failed batch is dropped too: storing its offsets would skip
            # past the failed one on partitions they share.
            log.error("%s; rewinding to the batch's first offsets", e)
            self.delivery.rewind(_messages(sent, previous) + self._discard_inflight())
            self.delivery.renew_producer()
        except BaseException:
            # Whatever stops the loop, the batch behind an undelivered one must never be
            # delivered and committed on the way out.
            self._discard_inflight()
            raise

    def _drain(self) -> None:
        """Label and send the batch in flight, complete it and the one sent before, commit."""
        self._advance(None)
        self._advance(None)
        self.delivery.commit()

    def _discard_inflight(self) -> list[Message]:
        """Forget the batch in flight, unlabelled, and any batch sent and not acknowledged;
        returns their messages so they can be redone."""
        inflight, self._inflight = self._inflight, None
        sent, self._sent = self._sent, None
        return _messages(sent, inflight)

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
        self._drain()
        metrics.ASSIGNED_PARTITIONS.set(0)
        kafka_stats.forget_partitions(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s without a clean revoke", _names(partitions))
        # Lost partitions cannot take offsets any more and their next owner redoes them; the
        # in-flight batch's other partitions, if any are still ours, are rewound. A batch sent
        # and not completed is given up: in exactly-once its transaction is aborted, which
        # also lets the next batch begin one.
        gone = {(tp.topic, tp.partition) for tp in partitions}
        if self._sent is not None:
            self.delivery.abandon()
        dropped = self._discard_inflight()
        self.delivery.rewind([m for m in dropped if (m.topic(), m.partition()) not in gone])
        self.health.in_group = False  # not ready until the group assigns partitions again
        metrics.REBALANCES.inc()
        metrics.ASSIGNED_PARTITIONS.set(0)
        kafka_stats.forget_partitions(partitions)


def _messages(*batches: Batch | None) -> list[Message]:
    return [m for b in batches if b is not None for m in b.messages]


def _usable(msg: Message) -> bool:
    err = msg.error()
    if err is None:
        return True
    if err.fatal():
        raise KafkaException(err)
    log.warning("consumer error: %s", err)
    return False


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
