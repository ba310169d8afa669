"""End-to-end benchmark through a real broker: the service against the naive per-message loop.

The consumers, one after the other on the same broker and posts: the naive loop; the service
as shipped (its defaults, which segment in the poll loop); with SENTIMENT_TOKENIZER_PROCESSES=1
(segmenting in a worker process beside the model); on each other runtime of model.runtimes that
runs on the CPU only (SENTIMENT_INFERENCE_RUNTIME=table, what auto picks on one core, and
onnx-int8, faster but with scores that move with the batch); and, with --baseline REF, the
service of an earlier commit, run from a git worktree of it with its own shipped model.
--variant replaces the service columns with your own. All get the same posts (the shipped
sample reviews) in the same two phases:

1. throughput: a burst of --posts posts; posts/s from the first post consumed to the last
   result written;
2. latency: --paced-seconds of posts produced at a fixed rate, twice: at half the naive loop's
   throughput (both keep up) and at one and a half times it (the naive loop falls behind);
   end-to-end latency is the result record's timestamp minus the input record's.

Peak RSS is the VmHWM of the consumer process plus its child processes. Every input id must
come back (nothing lost). The bars: the service's throughput >= 10x the naive loop's, and
>= 1.5x the baseline commit's. They run one after the other, so they do not compete for the
cores.

    python -m benchmarks.end_to_end [--posts 3000] [--paced-seconds 6] [--model default]
                                    [--baseline 6935144] [--variant NAME:SENTIMENT_X=V,...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from confluent_kafka.admin import AdminClient

from benchmarks.harness import (
    PARTITIONS,
    ROOT,
    ResultReader,
    peak_rss_mib,
    post_values,
    sample_texts,
    start_naive,
    start_service,
)
from consumer.embedded_broker import EmbeddedBroker, create_topics
from consumer.launch import stream
from consumer.settings import Settings
from model.runtimes import REGISTRY, auto

BAR = 10.0
BASELINE_BAR = 1.5
QUICK = {"linger.ms": 1}  # each post on its way at once: latency is measured from production


@dataclass
class Figures:
    name: str
    throughput: float = 0.0
    latency: dict[float, tuple[float, float]] = field(default_factory=dict)  # rate: p50, p99 ms
    peak_rss_mib: float = 0.0
    sent: int = 0
    results: int = 0
    lost: int = 0
    duplicates: int = 0


def measure(
    kind: str,
    bootstrap: str,
    texts: list[str],
    n: int,
    rates: list[float] | None,
    seconds: float,
    model: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    overload: bool = True,
) -> Figures:
    """Run one consumer through the burst, then one paced phase per rate.

    `rates` None means half and (with `overload`) one and a half times this consumer's own
    throughput (how the naive loop, which runs first, sets the pace for the others). `env` adds
    SENTIMENT_ settings; `cwd` runs another commit's service from its worktree.
    """
    tag = uuid.uuid4().hex[:8]
    topics = {"in": f"bench-in-{tag}", "out": f"bench-out-{tag}", "dlq": f"bench-dlq-{tag}"}
    create_topics(
        AdminClient({"bootstrap.servers": bootstrap}),
        {topics["in"]: PARTITIONS, topics["out"]: PARTITIONS, topics["dlq"]: 1},
    )
    fig = Figures(kind)
    proc = (
        start_naive(bootstrap, topics, model)
        if kind == "naive"
        else start_service(bootstrap, topics, model, env, cwd).proc
    )
    reader = ResultReader(bootstrap, topics["out"])
    sent: list[str] = []
    try:
        burst = post_values(texts, "burst", n)
        stream(bootstrap, topics["in"], burst, config=QUICK)
        sent += [i for i, _ in burst]
        reader.until(set(sent), timeout=max(600.0, n / 2))
        got = [reader.seen[i] for i, _ in burst if i in reader.seen]
        start_ms = min(r.consumed_at_ms for r in got)
        end_ms = max(r.written_ms for r in got)
        fig.throughput = len(got) / max((end_ms - start_ms) / 1e3, 1e-9)

        own = [fig.throughput / 2, fig.throughput * 1.5][: 2 if overload else 1]
        for k, rate in enumerate(rates if rates is not None else own):
            paced = post_values(texts, f"paced{k}", max(int(rate * seconds), 20))
            stream(bootstrap, topics["in"], paced, rate, config=QUICK)
            sent += [i for i, _ in paced]
            reader.until({i for i, _ in paced}, timeout=max(120.0, 3 * seconds * rate / 10))
            lat = sorted(r.written_ms - r.input_timestamp_ms
                         for r in (reader.seen.get(i) for i, _ in paced) if r)  # fmt: skip
            if lat:
                p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
                fig.latency[rate] = (statistics.median(lat), p99)
        fig.peak_rss_mib = peak_rss_mib(proc.pid)
        fig.sent = len(sent)
        fig.results = reader.records
        fig.lost = sum(1 for i in sent if i not in reader.seen)
        fig.duplicates = reader.records - len(reader.seen)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        reader.close()
    return fig


@contextlib.contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """A detached git worktree of `ref`, removed afterwards."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as d:
        path = Path(d) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path),
                        ref], check=True)  # fmt: skip
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                           check=False)  # fmt: skip


# The service's columns: the first is the one the bars read. The runtimes' columns are those
# that run on the CPU only, but for the one the defaults run there (auto, with two cores).
VARIANTS: list[tuple[str, dict[str, str]]] = [
    ("service (defaults)", {}),  # segmenting in the poll loop: 0 workers
    ("service, 1 worker", {"SENTIMENT_TOKENIZER_PROCESSES": "1"}),
    *((f"service, {name}", {"SENTIMENT_INFERENCE_RUNTIME": name}) for name, rt in REGISTRY.items()
      if rt.devices == {"cpu"} and rt is not auto(torch.device("cpu"))),
]  # fmt: skip


def variant(text: str) -> tuple[str, dict[str, str]]:
    """'name:SENTIMENT_X=1,SENTIMENT_Y=2' -> (name, {SENTIMENT_X: 1, ...})."""
    name, colon, spec = text.partition(":")
    pairs = [item.split("=", 1) for item in spec.split(",") if item]
    if (
        not name
        or not colon
        or any(len(p) != 2 or not p[0].startswith("SENTIMENT_") for p in pairs)
    ):
        raise argparse.ArgumentTypeError(f"expected NAME:SENTIMENT_VAR=VALUE,..., got {text!r}")
    return name, {k: v for k, v in pairs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="service vs naive per-message loop, via Kafka")
    ap.add_argument("--posts", type=int, default=3000, help="posts in the throughput burst")
    ap.add_argument("--paced-seconds", type=float, default=6.0, help="length of latency phase")
    ap.add_argument("--model", default="default")
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    ap.add_argument("--baseline", default="", help="a git commit whose service to run as well")
    ap.add_argument(
        "--variant",
        action="append",
        type=variant,
        metavar="NAME:VAR=VALUE,...",
        help="a service column with these SENTIMENT_ settings, instead of the standard ones "
        "(repeatable; the first is the one the bars read)",
    )
    args = ap.parse_args(argv)
    print("command:", shlex.join([Path(sys.executable).name, "-m", "benchmarks.end_to_end",
                                  *(argv if argv is not None else sys.argv[1:])]))  # fmt: skip
    d = {k: f.default for k, f in Settings.model_fields.items()}
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, load average "
        f"{os.getloadavg()[0]:.1f}; model: {args.model}; service defaults: batches of "
        f"{d['batch_max_size']} within {d['batch_max_wait_ms']} ms, inference chunks of "
        f"{d['inference_batch_size']}, runtime {d['inference_runtime']}, "
        f"{d['tokenizer_processes']} tokenizer processes, torch threads {d['torch_threads']}, "
        f"inference threads {d['inference_threads']}, onnx threads {d['onnx_threads']} "
        "(naive loop: PyTorch fp32, 1 thread)"
    )
    texts = sample_texts()
    broker = None
    if not args.bootstrap:
        broker = EmbeddedBroker()
        args.bootstrap = broker.start()
        print(f"broker: embedded Tansu on {args.bootstrap}")
    runs: list[tuple[str, Figures]] = []
    try:
        naive = measure("naive", args.bootstrap, texts, args.posts, None, args.paced_seconds,
                        args.model)  # fmt: skip
        rates = list(naive.latency)
        for name, extra in args.variant or VARIANTS:
            runs.append((name, measure("service", args.bootstrap, texts, args.posts, rates,
                                       args.paced_seconds, args.model, extra)))  # fmt: skip
        if args.baseline:
            with worktree(args.baseline) as tree:
                runs.append((f"main@{args.baseline[:7]}", measure(
                    "service", args.bootstrap, texts, args.posts, rates, args.paced_seconds,
                    "default", {}, cwd=tree)))  # fmt: skip
    finally:
        if broker is not None:
            broker.stop()
    report(naive, runs)
    service = runs[0][1]  # the bars are the first column's (the defaults'), not the best one's
    ratio = service.throughput / naive.throughput
    ok = ratio >= BAR and naive.lost == 0 and all(f.lost == 0 for _, f in runs)
    print(f"bar: service >= {BAR:.0f}x naive with nothing lost: {ratio:.1f}x, "
          f"{'PASS' if ok else 'FAIL'}")  # fmt: skip
    if args.baseline:
        base = service.throughput / runs[-1][1].throughput
        ok = ok and base >= BASELINE_BAR
        print(f"bar: service >= {BASELINE_BAR}x main@{args.baseline[:7]}: {base:.2f}x, "
              f"{'PASS' if base >= BASELINE_BAR else 'FAIL'}")  # fmt: skip
    return 0 if ok else 1


def report(naive: Figures, services: list[tuple[str, Figures]]) -> None:
    """A Markdown table: the naive loop, then each service variant with its ratio to it."""
    names = ["naive loop"] + [name for name, _ in services]
    figs = [naive] + [f for _, f in services]
    width = max(12, *(len(n) for n in names))

    def row(label: str, cells: list[str]) -> None:
        print(f"| {label:38} | " + " | ".join(f"{c:>{width}}" for c in cells) + " |")

    row("", names)
    print(f"|{'-' * 40}|" + "|".join(f"{'-' * (width + 1)}:" for _ in names) + "|")
    row("throughput, posts/s", [f"{f.throughput:.0f}" for f in figs])
    row("throughput vs naive loop", [f"{f.throughput / naive.throughput:.1f}x" for f in figs])
    nan = (float("nan"), float("nan"))
    for rate in naive.latency:
        row(f"latency p50 at {rate:.0f} posts/s, ms",
            [f"{f.latency.get(rate, nan)[0]:.0f}" for f in figs])  # fmt: skip
        row(f"latency p99 at {rate:.0f} posts/s, ms",
            [f"{f.latency.get(rate, nan)[1]:.0f}" for f in figs])  # fmt: skip
    row("peak RSS, MiB", [f"{f.peak_rss_mib:.0f}" for f in figs])
    for label, attr in (("posts sent", "sent"), ("results read", "results"), ("lost", "lost"),
                        ("duplicates", "duplicates")):  # fmt: skip
        row(label, [str(getattr(f, attr)) for f in figs])
    print()


if __name__ == "__main__":
    sys.exit(main())
