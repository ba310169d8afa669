"""Capacity: how fast the service drains a backlog, and the CPU it spends per post.

    python -m benchmarks.capacity [--posts 20000] [--rounds 2] [--cpus 1] [--variant ...]

A backlog of --posts posts is produced before the service starts; the clock runs from its first
result to its last, read from its own Prometheus counters, so no reader competes for the cores
and the figure is what the service sustains, not a burst. Per variant and round: posts/s; the
wall time per post and, from the service's histograms, the forward pass's and segmentation's
share of it (to within a batch: the service labels batch N before it counts N-1's results);
the CPU per post of the service (its workers included) and of the broker. Variants alternate
within each round, so a busy neighbour slows them alike.

The standard variants are the runtimes auto picks between on the CPU for the shipped model,
with two cores and with one (model.runtimes.auto). --cpus pins the service (not the broker) to
those CPUs with taskset: `--cpus 1` is a one-core pod. Note that taskset leaves the cgroup alone,
so auto still sees the machine's cores; the variants name their runtime.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import signal
import sys
import time
import urllib.request
import uuid

import torch
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.end_to_end import variant
from benchmarks.harness import (
    PARTITIONS,
    cpu_seconds,
    family,
    post_values,
    sample_texts,
    start_service,
)
from consumer.embedded_broker import EmbeddedBroker, create_topics
from consumer.launch import stream
from consumer.settings import Settings
from model.artifact import load
from model.runtimes import auto

CHUNKS_AT_ONCE = Settings.model_fields["inference_threads"].default


def auto_variants() -> list[tuple[str, dict[str, str]]]:
    """auto's choice on the CPU for the shipped model, with two cores and with one."""
    model = load("default").model
    chosen = dict.fromkeys(auto(torch.device("cpu"), model, cores) for cores in (2, 1))
    return [
        (f"{rt.name}, {CHUNKS_AT_ONCE} chunks at once" if rt.parallel_chunks else rt.name,
         {"SENTIMENT_INFERENCE_RUNTIME": rt.name})
        for rt in chosen
    ]  # fmt: skip


def scrape(port: int) -> dict[str, float]:
    """The service's metrics, each sample name summed over its labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for metric in text_string_to_metric_families(text):
        for sample in metric.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def drain(bootstrap: str, broker_pid: int, n: int, env: dict[str, str], cpus: str) -> str:
    """One variant through a backlog of `n` posts: its row of the table."""
    tag = uuid.uuid4().hex[:8]
    topics = {"in": f"cap-in-{tag}", "out": f"cap-out-{tag}", "dlq": f"cap-dlq-{tag}"}
    sizes = {topics["in"]: PARTITIONS, topics["out"]: PARTITIONS, topics["dlq"]: 1}
    create_topics(AdminClient({"bootstrap.servers": bootstrap}), sizes)
    backlog = post_values(sample_texts(), f"cap-{tag}", n)
    stream(bootstrap, topics["in"], backlog, config={"linger.ms": 50})
    prefix = ["taskset", "-c", cpus] if cpus else []
    service = start_service(bootstrap, topics, "default", env, prefix=prefix)
    proc, port = service.proc, service.port
    try:
        first: dict[str, float] | None = None
        t0 = svc0 = brk0 = 0.0
        deadline = time.monotonic() + max(300.0, n / 50)
        while time.monotonic() < deadline:
            m = scrape(port)
            done = m.get("sentiment_results_produced_total", 0.0)
            if first is None and done > 0:
                first, t0 = m, time.perf_counter()
                svc0, brk0 = cpu_seconds(family(proc.pid)), cpu_seconds([broker_pid])
            if done >= n:
                break
            time.sleep(0.05)  # polling the counters; the service runs in its own process
        else:
            raise RuntimeError(f"the service labelled {done:.0f} of {n} posts in time")
        assert first is not None
        wall = time.perf_counter() - t0
        k = n - first["sentiment_results_produced_total"]
        svc = cpu_seconds(family(proc.pid)) - svc0
        brk = cpu_seconds([broker_pid]) - brk0

        model, segment = (
            (m[f"sentiment_{s}_seconds_sum"] - first[f"sentiment_{s}_seconds_sum"]) / k * 1e6
            for s in ("inference", "preprocess")
        )
        return (f"{k / wall:,.0f} | {wall / k * 1e6:.0f} | {model:.0f} | {segment:.0f} | "
                f"{svc / k * 1e6:.0f} | {brk / k * 1e6:.0f}")  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cpus", default="", help="taskset CPU list for the service, e.g. 1")
    ap.add_argument("--variant", action="append", type=variant, metavar="NAME:VAR=VALUE,...",
                    help="a service with these SENTIMENT_ settings (repeatable)")  # fmt: skip
    args = ap.parse_args(argv)
    print("command:", shlex.join(["python", "-m", "benchmarks.capacity",
                                  *(argv if argv is not None else sys.argv[1:])]))  # fmt: skip
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, load average "
          f"{os.getloadavg()[0]:.1f}; service on CPUs {args.cpus or 'all'}\n")  # fmt: skip
    print("| variant | round | posts/s | wall µs/post | forward pass µs/post | segmentation µs/post"
          " | service CPU µs/post | broker CPU µs/post |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with EmbeddedBroker() as broker:
        for r in range(1, args.rounds + 1):
            for name, env in args.variant or auto_variants():
                row = drain(broker.bootstrap, broker.pid, args.posts, env, args.cpus)
                print(f"| {name} | {r} | {row} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
