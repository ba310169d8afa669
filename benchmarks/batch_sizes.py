"""How the micro-batch bounds trade throughput for latency: the figures behind the defaults.

Runs the service through the broker (as benchmarks.end_to_end does) once per setting: a burst for
throughput, then a paced stream for end-to-end latency at a fixed rate.

    python -m benchmarks.batch_sizes [--sizes 16,64,256,1024] [--waits 10,50,200] [--rate 100]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from benchmarks.end_to_end import measure
from benchmarks.harness import sample_texts
from consumer.embedded_broker import EmbeddedBroker


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="16,64,256,1024", help="SENTIMENT_BATCH_MAX_SIZE values")
    ap.add_argument("--waits", default="10,50,200", help="SENTIMENT_BATCH_MAX_WAIT_MS values")
    ap.add_argument("--size-for-waits", type=int, default=256, help="batch size in the wait sweep")
    ap.add_argument("--wait-for-sizes", type=int, default=50, help="wait in the size sweep")
    ap.add_argument("--posts", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=100.0, help="posts/s in the latency phase")
    ap.add_argument("--paced-seconds", type=float, default=8.0)
    ap.add_argument("--model", default="default")
    args = ap.parse_args(argv)
    print("command:", shlex.join([Path(sys.executable).name, "-m", "benchmarks.batch_sizes",
                                  *(argv if argv is not None else sys.argv[1:])]))  # fmt: skip
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    runs = [(int(s), args.wait_for_sizes) for s in args.sizes.split(",")]
    runs += [(args.size_for_waits, int(w)) for w in args.waits.split(",")]
    runs = list(dict.fromkeys(runs))
    texts = sample_texts()
    print(f"\n| batch max size | max wait, ms | posts/s | p50 ms at {args.rate:.0f}/s | p99 ms |")
    print("|---:|---:|---:|---:|---:|")
    with EmbeddedBroker() as broker:
        for size, wait in runs:
            env = {"SENTIMENT_BATCH_MAX_SIZE": str(size), "SENTIMENT_BATCH_MAX_WAIT_MS": str(wait)}
            f = measure("service", broker.bootstrap, texts, args.posts, [args.rate],
                        args.paced_seconds, args.model, env)  # fmt: skip
            p50, p99 = f.latency[args.rate]
            lost = f" ({f.lost} LOST)" if f.lost else ""
            print(f"| {size} | {wait} | {f.throughput:.0f}{lost} | {p50:.0f} | {p99:.0f} |",
                  flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
