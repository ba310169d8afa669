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
import json
import os
import shlex
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from benchmarks.end_to_end import PARTITIONS, family, post_values, sample_texts, start, status_mib
from consumer.embedded_broker import EmbeddedBroker, create_topics

SAMPLE_SECONDS = 10.0
SUSTAINED_SECONDS, SUSTAINED_WARMUP = 30.0, 10.0
RSS_GROWTH_BAR = 0.10
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    t: float
    rss_mib: float
    service_cpu: float  # share of one core since the last sample
    broker_cpu: float
    produced: int
    results: int


def rss_mib(pids: list[int]) -> float:
    return status_mib(pids, "VmRSS")


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, ValueError, IndexError):
            continue
    return total


class Counter:
    """Reads the result topic in a thread, collecting the ids seen."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"soak-{uuid.uuid4()}"})
        self.c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        self.ids: set[str] = set()
        self.records = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for m in self.c.consume(5000, 0.5):
                if m.error() is None:
                    self.records += 1
                    self.ids.add(json.loads(m.value() or b"{}")["id"])

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.c.close()


def produce_paced(
    bootstrap: str,
    topic: str,
    rate: float,
    seconds: float,
    produced: list[str],
    stop: threading.Event,
    tag: str = "soak",
) -> None:
    """`rate` posts/s for `seconds`, a tenth of a second's worth at a time, each id (`tag` and
    the step) appended to `produced` (which may already hold earlier posts' ids)."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 100, "batch.size": 1_000_000})
    texts = sample_texts()
    t0 = time.monotonic()
    step, sent = 0, 0
    while not stop.is_set() and time.monotonic() - t0 < seconds:
        step += 1
        due = int(rate * min(step * 0.1, seconds)) - sent
        sent += max(due, 0)
        for key, value in post_values(texts, f"{tag}{step}", max(due, 0)):
            while True:
                try:
                    p.produce(topic, value, key.encode())
                    break
                except BufferError:
                    p.poll(0.1)
            produced.append(key)
        p.poll(0)
        time.sleep(max(0.0, t0 + step * 0.1 - time.monotonic()))  # pacing is this loop's job
    p.flush(60)


def rate_until(results: Counter, n: int, timeout: float = 300.0) -> float:
    """Results/s from the first new result until `n` results are out."""
    start = results.records
    first = None
    deadline = time.monotonic() + timeout
    while results.records < n and time.monotonic() < deadline:
        if first is None and results.records > start:
            first = (time.monotonic(), results.records)
        time.sleep(0.05)  # sampling a counter another thread fills
    assert first is not None, "no results"
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
    proc, _ = start("service", args.bootstrap, topics, args.model, {})
    results = Counter(args.bootstrap, topics["out"])
    produced: list[str] = []
    samples: list[Sample] = []
    stop = threading.Event()
    try:
        # Capacity, first as a burst timed from its first result to its last; then sustained,
        # with posts produced faster than that for a while. On a shared machine the load
        # generator takes CPU from the service, so the burst overstates what it keeps up with:
        # soaked at 75% of the burst, the service fell behind (benchmarks/README.md).
        burst = post_values(sample_texts(), "burst", 6000)
        p = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 100})
        for key, value in burst:
            p.produce(topics["in"], value, key.encode())
        p.flush(60)
        produced += [k for k, _ in burst]
        burst_rate = rate_until(results, len(produced))
        overload: list[str] = []
        producer = threading.Thread(
            target=produce_paced,
            daemon=True,
            args=(
                args.bootstrap,
                topics["in"],
                1.5 * burst_rate,
                SUSTAINED_SECONDS,
                overload,
                stop,
                "overload",  # ids of their own: the soak's stream numbers its steps from 1 again
            ),
        )
        producer.start()
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
        producer = threading.Thread(target=produce_paced, daemon=True, args=(
            args.bootstrap, topics["in"], rate, seconds, produced, stop))  # fmt: skip
        t0 = time.monotonic()
        producer.start()
        svc_pids = family(proc.pid)
        last_svc = cpu_seconds(svc_pids)
        last_broker = cpu_seconds([broker.pid]) if broker else 0.0
        last_t = t0
        while producer.is_alive() or time.monotonic() - t0 < seconds:
            time.sleep(SAMPLE_SECONDS)  # the sampling interval itself
            now = time.monotonic()
            svc_pids = family(proc.pid)
            svc, brk = cpu_seconds(svc_pids), cpu_seconds([broker.pid]) if broker else 0.0
            samples.append(Sample(now - t0, rss_mib(svc_pids), (svc - last_svc) / (now - last_t),
                                  (brk - last_broker) / (now - last_t) if broker else float("nan"),
                                  len(produced), results.records))  # fmt: skip
            last_svc, last_broker, last_t = svc, brk, now
            s = samples[-1]
            print(
                f"t={s.t:5.0f}s rss={s.rss_mib:6.0f} MiB service_cpu={s.service_cpu:4.0%} "
                f"broker_cpu={s.broker_cpu:4.0%} produced={s.produced} results={s.results}"
            )
        producer.join()
        deadline = time.monotonic() + 300
        want = set(produced)
        while not want <= results.ids and time.monotonic() < deadline:
            time.sleep(0.5)  # the reader thread catching up with the last posts
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        results.close()
        if broker is not None:
            broker.stop()
    lost = len(set(produced) - results.ids)
    after = [s for s in samples if s.t >= 60] or samples
    growth = (max(s.rss_mib for s in after) - after[0].rss_mib) / after[0].rss_mib
    report(args.out, samples, capacity, rate, lost, growth, len(produced))
    ok = lost == 0 and growth < RSS_GROWTH_BAR
    print(f"posts {len(produced)}, lost {lost}, duplicates {results.records - len(results.ids)}; "
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
