"""Consumer lag per partition, from librdkafka's statistics or from cached watermarks.

librdkafka's own `consumer_lag` is -1 until the group has committed an offset on a partition
(seen with Tansu and with Kafka), which would leave a freshly assigned backlog invisible. So lag
is computed here from the same statistics: the partition's end offset (last stable offset, the
high watermark for read_uncommitted) minus the best known progress of this member, which is the
stored offset (results delivered, to be committed), else the committed offset, else the
application's position, else (nothing handed to the application yet) the fetch position less
the messages prefetched but not yet handed out.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from consumer import metrics

log = logging.getLogger(__name__)

# The lag of each series this process has set, so partitions that leave the assignment are
# removed, not frozen, and the total over the assignment can be read (`total_lag`). The poll
# loop writes it (the stats callback runs inside consume()); /healthz reads it from the HTTP
# thread.
_published: dict[tuple[str, str], int] = {}
_lock = threading.Lock()


def partition_lag(p: Mapping[str, Any]) -> int | None:
    """Lag of one partition entry of the statistics JSON, or None when it is not known yet."""
    end = p.get("ls_offset", -1)
    if end is None or end < 0:
        end = p.get("hi_offset", -1)
    if end is None or end < 0:
        return None
    for key in ("stored_offset", "committed_offset", "app_offset"):
        done = p.get(key, -1)
        if done is not None and done >= 0:
            return max(int(end) - int(done), 0)
    fetch = p.get("next_offset", -1)
    if fetch is not None and fetch >= 0:
        return max(int(end) - (int(fetch) - int(p.get("fetchq_cnt") or 0)), 0)
    return None


def handle_stats(stats_json: str) -> None:
    """`stats_cb` for the consumer: set sentiment_consumer_lag for each assigned partition."""
    try:
        stats = json.loads(stats_json)
    except json.JSONDecodeError:
        log.warning("librdkafka statistics were not JSON; lag not updated")
        return
    if stats.get("type") not in (None, "consumer"):
        return
    seen: set[tuple[str, str]] = set()
    for topic, t in (stats.get("topics") or {}).items():
        for part, p in (t.get("partitions") or {}).items():
            # -1 is librdkafka's internal "unassigned" partition; undesired ones are not ours.
            if part == "-1" or not p.get("desired", False):
                continue
            key = (topic, part)
            seen.add(key)
            lag = partition_lag(p)
            if lag is not None:
                _publish(key, lag)
    with _lock:
        gone = set(_published) - seen
    _forget(gone)


def update_lag_from_watermarks(consumer: Consumer, partitions: Iterable[TopicPartition]) -> None:
    """Fallback when statistics are off: high watermark minus position, per partition.

    Uses the watermarks librdkafka cached from its last fetch (no broker round trip, so it is
    cheap enough to call once per batch). Tansu answers a ListOffsets request for the latest
    offset with a wrong value, so the uncached query is deliberately not used.
    """
    parts = list(partitions)
    if not parts:
        return
    for tp in consumer.position(parts):
        offsets = consumer.get_watermark_offsets(tp, cached=True)
        if offsets is None or tp.offset < 0:
            continue
        _low, high = offsets
        if high < 0:
            continue
        _publish((tp.topic, str(tp.partition)), max(high - tp.offset, 0))


class WatermarkLag:
    """update_lag_from_watermarks at most once per `every` seconds, from the poll loop."""

    def __init__(self, consumer: Consumer, every: float = 1.0) -> None:
        self.consumer, self.every, self._at = consumer, every, -math.inf

    def tick(self) -> None:
        if time.monotonic() - self._at >= self.every:
            self._at = time.monotonic()
            update_lag_from_watermarks(self.consumer, self.consumer.assignment())


def total_lag() -> int:
    """Messages behind on the partitions assigned now: the sum of sentiment_consumer_lag."""
    with _lock:
        return sum(_published.values())


def forget_partitions(partitions: Iterable[TopicPartition]) -> None:
    """Drop the lag series of revoked partitions (call from on_revoke / on_lost)."""
    _forget({(tp.topic, str(tp.partition)) for tp in partitions})


def _forget(keys: set[tuple[str, str]]) -> None:
    for topic, part in keys:
        # remove() raises KeyError for a series that was never set; nothing to drop then.
        with contextlib.suppress(KeyError):
            metrics.CONSUMER_LAG.remove(topic, part)
        with _lock:
            _published.pop((topic, part), None)


def _publish(key: tuple[str, str], lag: int) -> None:
    metrics.CONSUMER_LAG.labels(topic=key[0], partition=key[1]).set(lag)
    with _lock:
        _published[key] = lag
