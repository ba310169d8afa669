"""librdkafka configs of the service's consumer and producer, from the settings.

Order matters: tunable defaults first, then the operator's passthrough properties
(SENTIMENT_KAFKA_CONFIG and secrets files), then the properties the delivery guarantee rests
on, which nothing may override.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from consumer import kafka_stats, metrics
from consumer.settings import Settings

log = logging.getLogger(__name__)


def kafka_configs(s: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """Consumer and producer configs: tunable defaults, then passthrough, then what we rely on."""
    passthrough = s.librdkafka_config()
    common: dict[str, Any] = {
        "bootstrap.servers": s.bootstrap_servers,
        "client.id": f"sentiment-{s.group_id}",
    }
    consumer: dict[str, Any] = {
        "auto.offset.reset": "earliest",
        # A broker may hold a fetch this long even when data arrives (Tansu does); a batch must
        # not wait longer than its own time bound for that.
        "fetch.wait.max.ms": min(s.batch_max_wait_ms, 500),
        # Prefetched input is memory too; posts are small, so 16 MB per client is plenty.
        "queued.max.messages.kbytes": 16384,
        **passthrough,
        **common,
        "group.id": s.group_id,
        "enable.auto.commit": False,  # committed after every batch, on revoke and on shutdown
        # Offsets are stored by hand once a batch's results are acknowledged; an automatic
        # store at consume() time would commit posts whose results could still be lost.
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "on_commit": on_commit,
    }
    if s.group_instance_id:
        consumer["group.instance.id"] = s.group_instance_id
    if s.statistics_interval_ms:
        consumer["statistics.interval.ms"] = s.statistics_interval_ms
        consumer["stats_cb"] = kafka_stats.handle_stats
    eos = s.processing_guarantee == "exactly-once"
    producer = {
        "linger.ms": 5,
        # Exactly-once: no re-bootstrap when every known broker is down at once (a one-broker
        # cluster restarting, a whole cluster's outage). librdkafka 2.16 then decommissions the
        # brokers it knew, the group coordinator among them, and send_offsets_to_transaction
        # waits for that coordinator for ever, past its own timeout (librdkafka issue #5511;
        # tests/test_consumer_broker_restart.py met it on every broker restart). The cost: if
        # all brokers come back under new names, only a restart finds them; set `rebootstrap`
        # through SENTIMENT_KAFKA_CONFIG where that can happen.
        **({"metadata.recovery.strategy": "none"} if eos else {}),
        **{k: v for k, v in passthrough.items() if not k.startswith(("session.", "heartbeat."))},
        **common,
        # Broker-side de-duplication of retries, so a retry never writes a result twice.
        "enable.idempotence": True,
    }
    if eos:
        producer["transactional.id"] = s.effective_transactional_id()
    return consumer, producer


def on_commit(err: KafkaError | None, partitions: list[TopicPartition]) -> None:
    """Counts the asynchronous commits; a failed one leaves its offsets for the next."""
    if err is None:
        metrics.COMMITS.inc()
    elif err.code() != KafkaError._NO_OFFSET:  # nothing new to commit
        log.warning("offset commit failed: %s", err)
