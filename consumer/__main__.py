"""`python -m consumer`: the streaming service.

Reads the settings (stops with one line naming the variable if one is bad), loads the model on
its device, serves /metrics, /healthz and /readyz, and runs the poll loop until SIGTERM or
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
from types import FrameType

from consumer.settings import Settings, SettingsError, load_settings

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

    from consumer import metrics
    from consumer.cores import available_cores
    from consumer.http_server import Health, HttpServer
    from consumer.service import Service
    from model.artifact import ArtifactError, load, resolve_device
    from model.predictor import Predictor

    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    health = Health(stall_seconds=max(60.0, 20 * settings.batch_max_wait_ms / 1e3))
    try:
        server = HttpServer(settings.http_port, health)
    except OSError as e:
        print(f"consumer: SENTIMENT_HTTP_PORT={settings.http_port}: {e}", file=sys.stderr)
        return 2
    server.start()
    log.info("HTTP on :%d (/metrics, /healthz, /readyz)", server.port)
    try:
        t0 = time.perf_counter()
        try:
            device = resolve_device(settings.device)
        except ValueError as e:
            print(f"consumer: SENTIMENT_DEVICE={settings.device}: {e}", file=sys.stderr)
            return 2
        try:
            loaded = load(settings.model, device=device)
        except (ArtifactError, ValueError) as e:
            print(f"consumer: SENTIMENT_MODEL={settings.model}: {e}", file=sys.stderr)
            return 2
        cores = available_cores()  # the pod's CPU limit, not the node's cores
        threads = settings.onnx_threads or cores
        chunk_threads = settings.inference_threads or cores
        try:
            predictor = Predictor(
                loaded, settings.inference_batch_size, settings.inference_runtime, threads,
                chunk_threads, cores,
            )  # fmt: skip
        except ValueError as e:
            print(f"consumer: SENTIMENT_INFERENCE_RUNTIME={settings.inference_runtime}: {e}",
                  file=sys.stderr)  # fmt: skip
            return 2
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
        log.info(
            "model %s on %s (runtime %s, cores %d) loaded in %.1f s; %s, batches of up to %d "
            "within %d ms",
            loaded.version, loaded.device, predictor.runtime, cores, time.perf_counter() - t0,
            settings.processing_guarantee, settings.batch_max_size, settings.batch_max_wait_ms,
        )  # fmt: skip
        shadow = None
        if settings.shadow_model:
            from consumer.shadow import Shadow

            try:
                candidate = Predictor(
                    load(settings.shadow_model, device=device), settings.inference_batch_size,
                    settings.inference_runtime, threads, chunk_threads, cores,
                )  # fmt: skip
            except (ArtifactError, ValueError) as e:
                print(f"consumer: SENTIMENT_SHADOW_MODEL={settings.shadow_model}: {e}",
                      file=sys.stderr)  # fmt: skip
                return 2
            candidate.predict(["预热"])
            shadow = Shadow(
                candidate, loaded, settings.drift_window_size, settings.drift_window_seconds
            )
            log.info("shadow candidate %s scored beside the live model%s", shadow.version,
                     ", on its encoding" if shadow.reuses_encoding else "")  # fmt: skip
        health.model_loaded = True
        if stop.is_set():
            return 0
        try:
            service = Service(settings, predictor, health, stop, shadow)
        except KafkaException as e:
            # librdkafka rejects a passthrough property; its value may be a secret, so drop it.
            why = re.sub(r'value "[^"]*"', "value", str(e.args[0].str()))
            print(f"consumer: SENTIMENT_KAFKA_CONFIG: {why}", file=sys.stderr)
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
        log.info("stopped cleanly")
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    code = main()
    # Every Kafka client is flushed and closed by now. Tearing down the interpreter with torch
    # loaded takes seconds here, time a SIGTERM'd pod does not have, so skip it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
