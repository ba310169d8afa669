"""Bookkeeping of one batch's deliveries, and the offsets that follow from it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import KafkaError, Message, TopicPartition
from prometheus_client import Counter

from consumer import metrics
from consumer.records import Source, now_ms

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """The broker did not acknowledge every record of a batch; the batch will be reprocessed."""


class Acks:
    """Counts one batch's outstanding and failed deliveries."""

    def __init__(self) -> None:
        self.pending = 0
        self.failed = 0

    def track(
        self, counter: Counter, source: Source | None
    ) -> Callable[[KafkaError | None, Message], None]:
        """A delivery callback for one record: on success it counts it on `counter` (a labelled
        child) and observes the end-to-end latency from the input's timestamp."""
        self.pending += 1
        ts = source.timestamp_ms if source is not None else None

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            self.pending -= 1
            if err is not None:
                self.failed += 1
                metrics.DELIVERY_ERRORS.inc()
                log.error("delivery to %s failed: %s", msg.topic(), err)
                return
            counter.inc()
            if ts is not None:
                metrics.END_TO_END.observe(max(now_ms() - ts, 0) / 1e3)

        return on_delivery


def next_offsets(batch: list[Message]) -> list[TopicPartition]:
    """Per partition, the offset after the last message of the batch: what to commit."""
    last: dict[tuple[str, int], int] = {}
    for m in batch:
        tp = (m.topic() or "", m.partition() or 0)
        last[tp] = max(last.get(tp, -1), m.offset() or 0)
    return [TopicPartition(t, p, off + 1) for (t, p), off in last.items()]


def first_offsets(batch: list[Message]) -> list[TopicPartition]:
    """Per partition, the offset of the first message of the batch: where to rewind to."""
    first: dict[tuple[str, int], int] = {}
    for m in batch:
        tp = (m.topic() or "", m.partition() or 0)
        first[tp] = min(first.get(tp, m.offset() or 0), m.offset() or 0)
    return [TopicPartition(t, p, off) for (t, p), off in first.items()]
