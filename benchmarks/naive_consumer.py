"""The baseline the benchmark compares against: the per-message loop of the design article.

One message -> one prediction -> one produce -> one synchronous commit. It flushes the producer
before each commit so that it keeps the same at-least-once promise as the service; it writes the
same result records (consumer.records.result_value), so the two are measured the same way.

    python -m benchmarks.naive_consumer BOOTSTRAP INPUT OUTPUT GROUP [MODEL]

Prints "ready" once the model is loaded and the consumer has its partitions. SIGTERM stops it.
"""

from __future__ import annotations

import signal
import sys
import threading

import torch
from confluent_kafka import Consumer, Producer

from consumer.records import Post, decode, now_ms, result_value
from model.artifact import load
from model.predictor import Predictor


def main(argv: list[str]) -> int:
    bootstrap, input_topic, output_topic, group = argv[:4]
    model = argv[4] if len(argv) > 4 else "default"
    torch.set_num_threads(1)  # the same as the service's default, so only the loop differs
    predictor = Predictor(load(model))
    predictor.predict(["预热"])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "fetch.wait.max.ms": 50,  # as the service, or Tansu's held fetches add ~250 ms
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    consumer.subscribe([input_topic], on_assign=lambda c, p: print("ready", flush=True))
    try:
        while not stop.is_set():
            msg = consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            post = decode(
                msg,
                input_format="json",
                text_field="text",
                max_bytes=65536,
                consumed_at_ms=now_ms(),
            )
            if isinstance(post, Post):
                pred = predictor.predict([post.text])[0]
                value = result_value(post, pred, predictor.loaded.version, now_ms())
                producer.produce(output_topic, value, post.key)
                producer.flush()
            consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()
        producer.flush(10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
