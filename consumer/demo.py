"""`make run`: the whole pipeline on a laptop, with nothing to set up.

Starts the embedded broker, starts the service (`python -m consumer`) with the shipped model,
streams the sample posts (the held-out test split of the reviews, consumer/samples/reviews.jsonl,
and our held-out social posts in Weibo style, consumer/samples/social.jsonl, shuffled together)
plus a handful of malformed messages into the input topic, and shows live progress read back
from the output and dead-letter topics. Ctrl+C stops the service (it drains and commits), then
the broker.

    python -m consumer.demo [--posts 3000] [--rate 1000] [--exit-when-done]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from consumer import launch
from consumer.embedded_broker import EmbeddedBroker, free_port
from consumer.records import H_REASON

SAMPLES = [
    Path(__file__).resolve().parent / "samples" / f for f in ("reviews.jsonl", "social.jsonl")
]
TOPICS = {"posts": 3, "posts.sentiment": 3, "posts.dlq": 1}
MALFORMED = [
    b'{"id": "broken-json", "text": ',
    b'{"id": "no-text-field"}',
    b'{"id": "latin-1", "text": "caf\xe9"}',
    b'{"id": "blank", "text": "   "}',
    json.dumps({"id": "huge", "text": "长" * 40_000}).encode(),
    b"[1, 2, 3]",
]


def sample_posts(n: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for f in SAMPLES for line in f.read_text("utf-8").splitlines()]
    random.Random(0).shuffle(rows)  # social posts among the reviews, the same order every run
    # Cycle the file for more posts than it holds; each copy gets its own ids.
    return [{**rows[i % len(rows)], "id": f"{rows[i % len(rows)]['id']}.{i // len(rows)}"}
            for i in range(n)]  # fmt: skip


def with_malformed(posts: list[dict[str, Any]]) -> Iterator[tuple[bytes, bytes]]:
    """The posts as (key, value) records, with the malformed messages spread among them."""
    every = max(len(posts) // (len(MALFORMED) + 1), 1)
    for i, post in enumerate(posts):
        if i and i % every == 0 and i // every <= len(MALFORMED):
            yield b"malformed", MALFORMED[i // every - 1]
        yield post["id"].encode(), json.dumps(post, ensure_ascii=False).encode()


class Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.labels: Counter[str] = Counter()
        self.dead: Counter[str] = Counter()
        self.agree: Counter[str] = Counter()  # by kind of post: review, social
        self.seen: Counter[str] = Counter()
        self.examples: list[str] = []
        self.t0 = time.monotonic()

    @property
    def done(self) -> int:
        return sum(self.labels.values())

    def add_result(self, r: dict[str, Any]) -> None:
        self.labels[r["label"]] += 1
        kind = str(r.get("id", "")).split("-", 1)[0]
        self.seen[kind] += 1
        self.agree[kind] += r.get("gold") == r["label"]
        if self.done <= 3 or self.done % 500 == 0 or (kind == "social" and self.seen[kind] <= 3):
            text = r.get("text", "")
            text = text if len(text) <= 40 else text[:39] + "…"
            self.examples.append(
                f"    {r['label']:>8} {r['score']:.2f}  {text}  (gold: {r.get('gold', '?')})"
            )

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        labels = " ".join(f"{k} {v}" for k, v in sorted(self.labels.items()))
        dead = " ".join(f"{k} {v}" for k, v in sorted(self.dead.items())) or "none"
        agree = ", ".join(f"{k}s {self.agree[k] / n:.1%}" for k, n in sorted(self.seen.items()))
        rate = self.done / max(elapsed, 1e-9)
        return (
            f"{self.done:>5}/{self.total} labelled  {rate:5.0f} posts/s  |  {labels}  |  "
            f"agrees with gold: {agree or '-'}  |  dead letters: {dead}"
        )


def watch(bootstrap: str, progress: Progress, stop: threading.Event, until_done: bool) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "demo-watcher"})
    c.assign(
        [TopicPartition(t, p, OFFSET_BEGINNING) for t in ("posts.sentiment", "posts.dlq")
         for p in range(TOPICS[t])]
    )  # fmt: skip
    last = 0.0
    try:
        while not stop.is_set():
            for m in c.consume(500, 0.2):
                if m.error():
                    continue
                if m.topic() == "posts.dlq":
                    reason = dict(m.headers() or []).get(H_REASON) or b"?"
                    progress.dead[reason.decode() if isinstance(reason, bytes) else reason] += 1
                else:
                    progress.add_result(json.loads(m.value() or b"{}"))
            if time.monotonic() - last >= 1.0:
                last = time.monotonic()
                for ex in progress.examples:
                    print(ex)
                progress.examples.clear()
                print(progress.line(), flush=True)
            finished = progress.done >= progress.total
            if finished and sum(progress.dead.values()) >= len(MALFORMED):
                print(progress.line(), flush=True)
                if until_done:
                    return
                print("all posts labelled; the service keeps running. Ctrl+C to stop.")
                until_done = True  # print the summary once, then just wait
                stop.wait()
    finally:
        c.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--posts", type=int, default=3000, help="how many sample posts to stream")
    ap.add_argument("--rate", type=float, default=1000.0, help="posts per second to produce")
    ap.add_argument("--exit-when-done", action="store_true", help="stop once all are labelled")
    # A job started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then keeps it ignored: Ctrl+C must still stop the demo.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = ap.parse_args(argv)

    stop = threading.Event()
    fd, name = tempfile.mkstemp(prefix="sentiment-service-", suffix=".log")
    os.close(fd)
    log = Path(name)
    print("starting the embedded Kafka broker (Tansu) ...", flush=True)
    with EmbeddedBroker() as broker:
        broker.create_topics(TOPICS)
        port = 9108 if _port_free(9108) else free_port()
        print(f"broker on {broker.bootstrap}; starting the service (log: {log}) ...")
        settings = {
            "bootstrap_servers": broker.bootstrap,
            "model": os.environ.get("SENTIMENT_MODEL", "default"),
            "http_port": port,
            "group_id": "sentiment-demo",
            # The embedded broker makes a group join wait half the session timeout; keep it short.
            "kafka_config": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        }
        svc = launch.start(settings, log=log, wait=False)
        try:
            svc.wait_ready()
            print(f"service ready. Metrics: http://127.0.0.1:{port}/metrics  "
                  f"(also /healthz, /readyz)")  # fmt: skip
            posts = sample_posts(args.posts)
            print(
                f"streaming {len(posts)} sample reviews + {len(MALFORMED)} malformed messages "
                "into 'posts'; results on 'posts.sentiment', dead letters on 'posts.dlq'"
            )
            records = with_malformed(posts)
            producer = threading.Thread(
                target=launch.stream,
                args=(broker.bootstrap, "posts", records, args.rate, stop),
                daemon=True,
            )
            producer.start()
            watch(broker.bootstrap, Progress(len(posts)), stop, args.exit_when_done)
        except launch.NotReadyError as e:
            sys.exit(str(e))
        except KeyboardInterrupt:
            print("\nCtrl+C: stopping the service (it drains, commits and leaves the group) ...")
        finally:
            stop.set()
            try:
                code = svc.stop(timeout=30)
            except subprocess.TimeoutExpired:
                svc.proc.kill()
                code = svc.proc.wait()
            print(f"service exited with {code}; stopping the broker.")
            print(f"metrics were at http://127.0.0.1:{port}/metrics; service log: {log}")
    return 0


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))  # noqa: S104 - the service binds all interfaces
        except OSError:
            return False
    return True


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # a second Ctrl+C during shutdown
        sys.exit(130)
