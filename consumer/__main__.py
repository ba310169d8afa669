"""`python -m consumer`: the streaming service.

Reads the settings (stops with one line naming the variable if one is bad), serves /metrics,
/healthz and /readyz, loads the model and any shadow candidate on its device (`load_models`),
builds everything else the poll loop drives (`build`), and runs the loop until SIGTERM or
SIGINT, which only set a stop flag: the loop drains the batch in hand, commits and closes, and
the process exits 0.

Exit codes: 0 after a clean stop, 2 for a bad setting or model, 1 for a fatal Kafka error.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING

from consumer.settings import REGISTRY_FORMATS, Settings, SettingsError, load_settings

if TYPE_CHECKING:  # imported where used, after the settings check: they pull in torch
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from consumer.http_server import Health
    from consumer.service import Service
    from consumer.shadow import Shadow
    from model.predictor import Predictor

log = logging.getLogger("consumer")


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings()
    except SettingsError as e:
        print(f"consumer: bad setting: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    log.info("settings: %r", settings)  # SecretStr fields print as stars
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("%s received; draining", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return run(settings, stop)


def run(settings: Settings, stop: threading.Event) -> int:
    # Heavy imports after the settings check, so a bad setting fails in a fraction of a second.
    from concurrent.futures.process import BrokenProcessPool

    from confluent_kafka import KafkaException

    from consumer import kafka_stats, metrics
    from consumer.http_server import Health, HttpServer

    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    health = Health(
        stall_seconds=max(60.0, 20 * settings.batch_max_wait_ms / 1e3),
        stuck_seconds=settings.stuck_seconds,
        lag=kafka_stats.total_lag,
    )
    metrics.SECONDS_SINCE_PROGRESS.set_function(health.seconds_since_progress)
    try:
        server = HttpServer(settings.http_port, health)
    except OSError as e:
        print(f"consumer: SENTIMENT_HTTP_PORT={settings.http_port}: {e}", file=sys.stderr)
        return 2
    registry_errors: tuple[type[Exception], ...] = ()
    if settings.uses_registry():
        from consumer.schemas import RegistryError

        registry_errors = (RegistryError,)
    server.start()
    log.info("HTTP on :%d (/metrics, /healthz, /readyz)", server.port)
    try:
        try:
            predictor, shadow = load_models(settings)
            health.model_loaded = True
            if stop.is_set():
                return 0
            service = build(settings, predictor, shadow, health, stop)
        except StartupError as e:
            print(f"consumer: {e}", file=sys.stderr)
            return 2
        try:
            service.run()
        except KafkaException as e:
            log.error("fatal Kafka error: %s", e)
            return 1
        except BrokenProcessPool as e:
            # A segmentation worker died (killed, out of memory); offsets of the batches it
            # held were never stored, so a restart redoes them.
            log.error("a tokenizer worker process died: %s", e)
            return 1
        except registry_errors as e:
            # Not the messages' fault: their offsets were never stored, so a restart redoes them.
            log.error("%s", e)
            return 1
        log.info("stopped cleanly")
        return 0
    finally:
        server.stop()


class StartupError(Exception):
    """A setting the service cannot start with; the message names its variable."""


@contextmanager
def blame(variable: str, value: object, *errors: type[Exception]) -> Iterator[None]:
    """Turn `errors` into a StartupError naming SENTIMENT_`variable` and its value."""
    try:
        yield
    except errors as e:
        raise StartupError(f"SENTIMENT_{variable}={value}: {e}") from e


def load_models(settings: Settings) -> tuple[Predictor, Shadow | None]:
    """The live model on its device, warmed up, and the shadow candidate if one is set."""
    from consumer import metrics
    from consumer.cores import available_cores
    from consumer.shadow import Shadow
    from model.artifact import ArtifactError, load, resolve_device
    from model.predictor import Predictor

    t0 = time.perf_counter()
    with blame("DEVICE", settings.device, ValueError):
        device = resolve_device(settings.device)
    cores = available_cores()  # the pod's CPU limit, not the node's cores
    predictor_for = partial(
        Predictor, batch_size=settings.inference_batch_size, runtime=settings.inference_runtime,
        threads=settings.onnx_threads or cores, chunk_threads=settings.inference_threads or cores,
        cores=cores,
    )  # fmt: skip
    with blame("MODEL", settings.model, ArtifactError, ValueError):
        loaded = load(settings.model, device=device)
    with blame("INFERENCE_RUNTIME", settings.inference_runtime, ValueError):
        predictor = predictor_for(loaded)
    predictor.predict(["预热"])  # loads jieba's dictionary before the first real batch
    metrics.init_label_series(loaded.labels)
    metrics.MODEL_INFO.info(
        {
            "version": loaded.version,
            "path": str(loaded.path),
            "device": str(loaded.device),
            "runtime": predictor.runtime,
            "labels": ",".join(loaded.labels),
        }
    )
    if device.type == "cuda":
        import torch

        # Read when Prometheus scrapes, not set on every batch.
        metrics.GPU_MEMORY.set_function(lambda: torch.cuda.memory_allocated(device))
    log.info(
        "model %s on %s (runtime %s, cores %d) loaded in %.1f s; %s, batches of up to %d "
        "within %d ms",
        loaded.version, loaded.device, predictor.runtime, cores, time.perf_counter() - t0,
        settings.processing_guarantee, settings.batch_max_size, settings.batch_max_wait_ms,
    )  # fmt: skip
    if not settings.shadow_model:
        return predictor, None
    with blame("SHADOW_MODEL", settings.shadow_model, ArtifactError, ValueError):
        candidate = predictor_for(load(settings.shadow_model, device=device))
    candidate.predict(["预热"])
    shadow = Shadow(candidate, loaded, settings.drift_window_size, settings.drift_window_seconds)
    log.info("shadow candidate %s scored beside the live model%s", shadow.version,
             ", on its encoding" if shadow.reuses_encoding else "")  # fmt: skip
    return predictor, shadow


def build(
    settings: Settings,
    predictor: Predictor,
    shadow: Shadow | None,
    health: Health,
    stop: threading.Event,
    registry: SchemaRegistryClient | None = None,
) -> Service:
    """The poll loop with what it drives: the Kafka clients, the segmenter, the drift monitor
    and the shape of the results. `registry` replaces the client of SENTIMENT_SCHEMA_REGISTRY_URL
    (tests pass the mock registry they read from)."""
    from confluent_kafka import Consumer, KafkaException

    from consumer import kafka_stats
    from consumer.delivery import Delivery
    from consumer.drift_monitor import DriftMonitor
    from consumer.kafka_config import kafka_configs
    from consumer.results import Results
    from consumer.segmentation import make_segmenter
    from consumer.service import Service

    read, writer = None, None
    if settings.uses_registry():
        # Only here: the serdes import fastavro, jsonschema and an HTTP client.
        from consumer import schemas

        url = settings.schema_registry_url
        with blame("SCHEMA_REGISTRY_URL", url, schemas.RegistryError, ValueError):
            client = registry or schemas.connect(settings)
            if settings.input_format in REGISTRY_FORMATS:
                read = schemas.TypedReader(client, settings.input_format)
            if settings.output_format in REGISTRY_FORMATS:
                topics = [t for t in (settings.output_topic, settings.review_topic) if t]
                writer = schemas.TypedWriter(client, settings.output_format, topics)
                log.info("results as %s, schema ids %s", settings.output_format, writer.schema_ids)
    consumer_cfg, producer_cfg = kafka_configs(settings)
    try:
        consumer = Consumer(consumer_cfg)
        delivery = Delivery(
            consumer, producer_cfg, dlq_topic=settings.dlq_topic,
            exactly_once=settings.processing_guarantee == "exactly-once", stop=stop,
            beat=health.beat, max_dead_letter_bytes=settings.max_message_bytes,
        )  # fmt: skip
    except KafkaException as e:
        # librdkafka rejects a passthrough property; its value may be a secret, so drop it.
        why = re.sub(r'value "[^"]*"', "value", str(e.args[0].str()))
        raise StartupError(f"SENTIMENT_KAFKA_CONFIG: {why}") from e
    loaded = predictor.loaded
    drift = DriftMonitor(
        loaded.reference, loaded.labels, settings.drift_window_size,
        settings.drift_window_seconds, max_len=loaded.max_len,
    )  # fmt: skip
    shadow_version = shadow.version if shadow is not None else None
    results = Results(settings, loaded.labels, loaded.version, shadow_version, writer)
    segmenter = make_segmenter(loaded, settings.tokenizer_processes)
    # Without librdkafka statistics, lag comes from the cached watermarks.
    lag = None if settings.statistics_interval_ms else kafka_stats.WatermarkLag(consumer)
    return Service(settings, consumer, delivery, segmenter, predictor, shadow, results, drift,
                   lag, health, stop, read)  # fmt: skip


if __name__ == "__main__":
    code = main()
    # Every Kafka client is flushed and closed by now. Tearing down the interpreter with torch
    # loaded takes seconds here, time a SIGTERM'd pod does not have, so skip it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
