"""Where a post's time goes, in process, stage by stage: the ceiling any consumer design meets.

    python -m benchmarks.stages [--model default] [--posts 1730] [--threads 1] [--loop-posts 20000]

On the shipped sample reviews, in milliseconds per post (median of --repeats passes):

- the text pipeline: normalisation, then each segmenter backend (jieba, rjieba), and the
  vocabulary lookup;
- the forward pass in length-sorted chunks, as the service runs it, on each runtime of
  model.runtimes that runs on the model's device, and one post at a time, as the naive loop does;
- a shadow candidate's cost (SENTIMENT_SHADOW_MODEL): its own encoding and forward pass (one
  that encodes as the live model does skips the encoding);
- the poll loop's own cost, with the model taken out: consume, decode, the result JSON, produce
  and the delivery callbacks, through an embedded broker, as CPU time of this process (its
  librdkafka threads included) per post. That cost is what bounds a GPU pod, where the model's
  share all but vanishes: the aim is <= 20 µs per post (50k posts/s per process).

The last lines turn the figures into ceilings: posts/s of the model alone on one core, and of
segmentation plus the model on all cores, which no batching, threading or broker can beat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import threading
import time
import uuid
from collections.abc import Callable

import torch
from confluent_kafka import Consumer, Producer

from benchmarks.harness import SAMPLES, median_seconds
from consumer import metrics
from consumer.batch import decode_batch
from consumer.delivery import Delivery, Outgoing
from consumer.embedded_broker import EmbeddedBroker
from consumer.kafka_config import kafka_configs
from consumer.records import now_ms, result_value
from consumer.settings import Settings
from model.artifact import load
from model.predictor import Prediction, Predictor, batched_probabilities, resolve_runtime
from model.runtimes import REGISTRY
from model.text import Tokenizer, TokenizerConfig, normalize

SERVICE_CHUNK = Settings.model_fields["inference_batch_size"].default

LOOP_AIM_US = 20.0


def per_post_ms(fn: Callable[[], object], n: int, repeats: int) -> float:
    return median_seconds(fn, repeats) / n * 1e3


def poll_loop_us(raw: list[bytes], n: int, batch: int) -> tuple[float, float, float]:
    """CPU µs, wall µs and the loop thread's own CPU µs per post of the service's loop without
    segmentation or the model, with the service's own consumer and producer configs
    (librdkafka statistics included). The thread's own share includes the librdkafka work its
    calls do (building messages, serving callbacks); the rest is librdkafka's threads."""
    with EmbeddedBroker() as broker:
        broker.create_topics({"in": 3, "out": 3, "dlq": 1})
        p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50})
        for i in range(n):
            p.produce("in", raw[i % len(raw)])
            if i % 10_000 == 0:
                p.poll(0)
        p.flush(60)
        s = Settings(bootstrap_servers=broker.bootstrap, input_topic="in", output_topic="out",
                     dlq_topic="dlq", group_id=uuid.uuid4().hex)  # fmt: skip
        consumer_cfg, producer_cfg = kafka_configs(s)  # the service's own consumer and producer
        consumer = Consumer(consumer_cfg)
        consumer.subscribe(["in"])
        delivery = Delivery(
            consumer, producer_cfg, dlq_topic="dlq", exactly_once=False, stop=threading.Event()
        )
        pred = Prediction("positive", 0.9, {"negative": 0.1, "positive": 0.9}, 20, 1)
        counter = metrics.RESULTS_PRODUCED.labels(label="positive")
        headers = [("model.version", b"v0")]
        done = 0
        cpu0 = wall0 = thread0 = 0.0
        while done < n:
            msgs = [m for m in consumer.consume(batch, 1.0) if m.error() is None]
            if not msgs:
                continue
            if not done:  # the clock starts once the group has its partitions
                cpu0, wall0, thread0 = time.process_time(), time.perf_counter(), time.thread_time()
            posts, dead = decode_batch(msgs, s)
            at = now_ms()
            records = [Outgoing("out", q.key, result_value(q, pred, "v0", at), headers, counter,
                                q.source) for q in posts]  # fmt: skip
            delivery.deliver(msgs, records, dead)
            done += len(msgs)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        thread = time.thread_time() - thread0
        consumer.close()
        return cpu / done * 1e6, wall / done * 1e6, thread / done * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--posts", type=int, default=1730)
    ap.add_argument("--threads", type=int, default=1, help="PyTorch threads (the service's 1)")
    ap.add_argument(
        "--chunk",
        type=int,
        default=SERVICE_CHUNK,
        help="forward-pass chunk (the service's default)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--loop-posts", type=int, default=20_000, help="0 skips the poll loop")
    ap.add_argument("--shadow", default="", help="a shadow candidate (default: the model itself)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("command:", shlex.join(["python", "-m", "benchmarks.stages", *(argv or sys.argv[1:])]))
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f}; torch threads {args.threads}")  # fmt: skip

    raw = SAMPLES.read_text(encoding="utf-8").splitlines()[: args.posts]
    texts = [json.loads(line)["text"] for line in raw]
    n = len(texts)
    loaded = load(args.model)
    predictor = Predictor(loaded, batch_size=args.chunk)
    encoded = predictor.encode(texts)
    seqs = [e.ids for e in encoded]
    tokens = [e.tokens for e in encoded]
    one_at_a_time = seqs[: min(n, 300)]
    cfg = loaded.tokenizer.config
    labels = len(loaded.labels)

    def forward_one() -> None:
        for s in one_at_a_time:
            batched_probabilities(predictor.model, [s], 1, predictor.device, labels)

    stages = {
        "JSON decode": per_post_ms(lambda: [json.loads(r) for r in raw], n, args.repeats),
        "normalise": per_post_ms(lambda: [normalize(t, cfg.t2s) for t in texts], n, args.repeats),
    }
    for backend in ("jieba", "rjieba"):
        tok = Tokenizer(TokenizerConfig(**{**cfg.to_dict(), "segmenter": backend}))  # type: ignore[arg-type]
        mark = " (the model's)" if backend == cfg.segmenter else ""
        stages[f"normalise + {backend}{mark}"] = per_post_ms(
            lambda tok=tok: tok.tokenize_many(texts),  # type: ignore[misc]
            n,
            args.repeats,
        )
    stages["vocabulary lookup"] = per_post_ms(
        lambda: [loaded.vocab.encode(t, loaded.max_len) for t in tokens], n, args.repeats
    )
    forward: dict[str, float] = {}  # ms per post by runtime
    for runtime in (name for name, rt in REGISTRY.items() if loaded.device.type in rt.devices):
        p = Predictor(loaded, batch_size=args.chunk, runtime=runtime, threads=args.threads)
        forward[runtime] = per_post_ms(
            lambda p=p: p.probabilities(encoded),  # type: ignore[misc]
            n,
            args.repeats,
        )
        stages[f"BiLSTM, chunks of {p.batch_size}, {runtime}"] = forward[runtime]
    stages["BiLSTM, one post at a time, torch"] = per_post_ms(
        forward_one, len(one_at_a_time), args.repeats
    )
    # A shadow candidate with a text pipeline of its own encodes each post its own way and runs
    # its own forward pass, in the poll loop: its whole cost on top of the live model's. One
    # that encodes alike (consumer.shadow.encodes_alike) skips the encoding.
    shadow = Predictor(load(args.shadow or args.model), batch_size=args.chunk, runtime="auto",
                       threads=args.threads)  # fmt: skip
    stages[f"shadow candidate ({shadow.loaded.version}): encode + forward"] = per_post_ms(
        lambda: shadow.predict(texts), n, args.repeats
    )
    stages["JSON encode of the result"] = per_post_ms(
        lambda: [json.dumps({"id": i, "label": "positive", "score": 0.5}) for i in range(n)],
        n,
        args.repeats,
    )
    print(f"\n{n} posts, mean {sum(map(len, seqs)) / n:.1f} tokens after the vocabulary\n")
    print("| stage | ms per post |")
    print("|---|---:|")
    for name, ms in stages.items():
        print(f"| {name} | {ms:.3f} |")
    if args.loop_posts:
        rows = [r.encode() for r in raw]
        cpu_us, wall_us, thread_us = poll_loop_us(rows, args.loop_posts, 256)
        verdict = "met" if cpu_us <= LOOP_AIM_US else "not met"
        print(f"\npoll loop without the model ({args.loop_posts} posts through an embedded "
              f"broker, batches of 256): {cpu_us:.1f} µs CPU per post, {thread_us:.1f} of it "
              f"in the loop's own thread ({wall_us:.1f} µs wall); aim <= {LOOP_AIM_US:.0f} µs: "
              f"{verdict}")  # fmt: skip
    default_runtime = resolve_runtime("auto", loaded.device, loaded.model)
    model = forward[default_runtime]
    segment = next(v for k, v in stages.items() if k.endswith("(the model's)"))
    segment += stages["vocabulary lookup"]
    cores = os.cpu_count() or 1
    print(f"\nceiling, the batched model alone on one core ({default_runtime}): "
          f"{1e3 / model:.0f} posts/s")  # fmt: skip
    print(
        f"ceiling, segmentation and the batched model on {cores} cores, nothing else running: "
        f"{cores * 1e3 / (segment + model):.0f} posts/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
