"""Soak: the service under a steady stream for minutes, memory and loss watched throughout.

    python -m benchmarks.soak --minutes 10 [--load 0.75] [--rate R] [--out build/soak]

First the service's capacity on this machine: a burst, then 30 s of posts produced at 1.5x the
burst's rate, counted once the backlog has built up (the sustained figure, with the load
generator's own CPU use, is the capacity). Then posts are produced at --load of it (or at
--rate posts/s) for --minutes, in large batches (linger 100 ms: the
embedded broker's cost grows with many small batches, see shared/ENVIRONMENT.md). Every 10 s it
samples the service's RSS (its worker processes included), the CPU of the service and of the
broker, and how many results are out. At the end every post must have a result.

The verdicts: after the first minute RSS grows less than 10%, and 0 posts are lost. It writes
the samples as a table (soak.md) and the RSS curve as a plot (soak.png) under --out. With
KAFKA_BOOTSTRAP_SERVERS set it runs against that cluster instead of the embedded broker (whose
CPU is then not sampled).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from benchmarks.harness import (
    PARTITIONS,
    ResultReader,
    cpu_seconds,
    family,
    post,
    post_values,
    sample_texts,
    start_service,
    status_mib,
)
from consumer.embedded_broker import EmbeddedBroker, create_topics
from consumer.launch import stream

SAMPLE_SECONDS = 10.0
SUSTAINED_SECONDS, SUSTAINED_WARMUP = 30.0, 10.0
RSS_GROWTH_BAR = 0.10


@dataclass
class Sample:
    t: float
    rss_mib: float
    service_cpu: float  # share of one core since the last sample
    broker_cpu: float
    produced: int
    results: int


# The embedded broker's cost grows with many small batches (shared/ENVIRONMENT.md).
BIG_BATCHES = {"linger.ms": 100, "batch.size": 1_000_000}


def stream_for(
    bootstrap: str,
    topic: str,
    rate: float,
    seconds: float,
    produced: list[str],
    stop: threading.Event,
    tag: str = "soak",
) -> threading.Thread:
    """A thread producing `rate` posts/s for `seconds`, ids `tag-N`, each id appended to
    `produced` (which may already hold earlier posts' ids) as its post goes out."""

    def records() -> Iterator[tuple[str, bytes]]:
        texts = sample_texts()
        for i in range(int(rate * seconds)):  # made as they go: minutes of posts add up
            key, value = post(texts, tag, i)
            produced.append(key)
            yield key, value

    args = (bootstrap, topic, records(), rate, stop, BIG_BATCHES)
    thread = threading.Thread(target=stream, args=args, daemon=True)
    thread.start()
    return thread


def rate_until(results: ResultReader, n: int, timeout: float = 300.0) -> float:
    """Results/s from the first new result until `n` results are out."""
    start = results.records
    assert results.wait(lambda: results.records > start, timeout), "no results"
    first = (time.monotonic(), results.records)
    results.wait(lambda: results.records >= n, timeout)
    return (results.records - first[1]) / max(time.monotonic() - first[0], 1e-6)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--load", type=float, default=0.75, help="share of the measured capacity")
    ap.add_argument("--rate", type=float, default=0.0, help="posts/s; overrides --load")
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", type=Path, default=Path("build/soak"))
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    args = ap.parse_args(argv)
    print("command:", shlex.join(["python", "-m", "benchmarks.soak", *sys.argv[1:]]))
    broker = None
    if not args.bootstrap:
        broker = EmbeddedBroker()
        args.bootstrap = broker.start()
    tag = uuid.uuid4().hex[:8]
    topics = {"in": f"soak-in-{tag}", "out": f"soak-out-{tag}", "dlq": f"soak-dlq-{tag}"}
    partitions = {topics["in"]: PARTITIONS, topics["out"]: PARTITIONS, topics["dlq"]: 1}
    create_topics(AdminClient({"bootstrap.servers": args.bootstrap}), partitions)
    proc = start_service(args.bootstrap, topics, args.model).proc
    results = ResultReader(args.bootstrap, topics["out"])
    produced: list[str] = []
    samples: list[Sample] = []
    stop = threading.Event()
    try:
        # Capacity, first as a burst timed from its first result to its last; then sustained,
        # with posts produced faster than that for a while. On a shared machine the load
        # generator takes CPU from the service, so the burst overstates what it keeps up with:
        # soaked at 75% of the burst, the service fell behind (benchmarks/README.md).
        burst = post_values(sample_texts(), "burst", 6000)
        stream(args.bootstrap, topics["in"], burst, config=BIG_BATCHES)
        produced += [k for k, _ in burst]
        burst_rate = rate_until(results, len(produced))
        overload: list[str] = []
        producer = stream_for(args.bootstrap, topics["in"], 1.5 * burst_rate,
                              SUSTAINED_SECONDS, overload, stop, "overload")  # fmt: skip
        time.sleep(SUSTAINED_WARMUP)  # the window starts once the backlog has built up
        first = (time.monotonic(), results.records)
        producer.join()
        capacity = (results.records - first[1]) / max(time.monotonic() - first[0], 1e-6)
        produced += overload
        rate_until(results, len(produced))  # drained before the soak starts
        rate = args.rate or args.load * capacity
        print(f"capacity {burst_rate:,.0f} posts/s as a burst, {capacity:,.0f} sustained with "
              f"the load generator running; soaking at {rate:,.0f} posts/s for "
              f"{args.minutes:g} min")  # fmt: skip

        seconds = args.minutes * 60
        t0 = time.monotonic()
        producer = stream_for(args.bootstrap, topics["in"], rate, seconds, produced, stop)
        svc_pids = family(proc.pid)
        last_svc = cpu_seconds(svc_pids)
        last_broker = cpu_seconds([broker.pid]) if broker else 0.0
        last_t = t0
        while producer.is_alive() or time.monotonic() - t0 < seconds:
            time.sleep(SAMPLE_SECONDS)  # the sampling interval itself
            now = time.monotonic()
            svc_pids = family(proc.pid)
            svc, brk = cpu_seconds(svc_pids), cpu_seconds([broker.pid]) if broker else 0.0
            samples.append(Sample(now - t0, status_mib(svc_pids, "VmRSS"),
                                  (svc - last_svc) / (now - last_t),
                                  (brk - last_broker) / (now - last_t) if broker else float("nan"),
                                  len(produced), results.records))  # fmt: skip
            last_svc, last_broker, last_t = svc, brk, now
            s = samples[-1]
            print(
                f"t={s.t:5.0f}s rss={s.rss_mib:6.0f} MiB service_cpu={s.service_cpu:4.0%} "
                f"broker_cpu={s.broker_cpu:4.0%} produced={s.produced} results={s.results}"
            )
        producer.join()
        results.until(set(produced), timeout=300)
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        results.close()
        if broker is not None:
            broker.stop()
    lost = len(set(produced) - results.seen.keys())
    after = [s for s in samples if s.t >= 60] or samples
    growth = (max(s.rss_mib for s in after) - after[0].rss_mib) / after[0].rss_mib
    report(args.out, samples, capacity, rate, lost, growth, len(produced))
    ok = lost == 0 and growth < RSS_GROWTH_BAR
    print(f"posts {len(produced)}, lost {lost}, duplicates {results.records - len(results.seen)}; "
          f"RSS growth after the first minute {growth:+.1%} (bar < {RSS_GROWTH_BAR:.0%}): "
          f"{'PASS' if ok else 'FAIL'}")  # fmt: skip
    return 0 if ok else 1


def report(out: Path, samples: list[Sample], capacity: float, rate: float, lost: int,
           growth: float, posts: int) -> None:  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"capacity {capacity:,.0f} posts/s, soaked at {rate:,.0f} posts/s; {posts} posts, "
             f"{lost} lost; RSS growth after the first minute {growth:+.1%}", "",
             "| t, s | service RSS, MiB | service CPU | broker CPU | produced | results |",
             "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {s.t:.0f} | {s.rss_mib:.0f} | {s.service_cpu:.0%} | {s.broker_cpu:.0%} | "
              f"{s.produced} | {s.results} |" for s in samples]  # fmt: skip
    (out / "soak.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([s.t for s in samples], [s.rss_mib for s in samples], marker="o")
    ax.set_xlabel("seconds")
    ax.set_ylabel("service RSS, MiB (workers included)")
    ax.set_title(f"soak at {rate:,.0f} posts/s: RSS {growth:+.1%} after the first minute")
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(out / "soak.png", dpi=110)
    print(f"wrote {out / 'soak.md'} and {out / 'soak.png'}")


if __name__ == "__main__":
    sys.exit(main())
