"""The prepared GPU check: one table of what a CUDA node does with this service.

    benchmarks/gpu_check.sh             # on a CUDA machine; finishes within 8 minutes
    benchmarks/gpu_check.sh --dry-run   # anywhere: the same steps, tiny and on the CPU

1. The model alone: posts/s of the forward pass on CUDA at batch sizes 256 to 4,096, fp32
   (runtime torch) and fp16 autocast (torch-fp16), and the GPU memory it held.
2. End to end through the embedded broker: the service with 1, 2 and 4 segmenter workers;
   throughput of a burst, then p50 and p99 latency at half of that throughput.

Goals on one H200, printed beside the figures: the model alone >= 500k posts/s, end to end
>= 50k posts/s per pod, p99 <= 100 ms at half load.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

import torch

from benchmarks.end_to_end import measure
from benchmarks.harness import sample_texts
from consumer.embedded_broker import EmbeddedBroker
from model.artifact import load
from model.predictor import Predictor
from model.runtimes import REGISTRY

GOAL_MODEL, GOAL_E2E, GOAL_P99_MS = 500_000, 50_000, 100.0


def model_only(cuda: bool, posts: int, sizes: list[int]) -> list[tuple[str, int, float, float]]:
    """(runtime, batch size, posts/s, peak GPU MiB) for each runtime and batch size."""
    loaded = load("default", device="cuda" if cuda else "cpu")
    texts = sample_texts()
    encoded = Predictor(loaded).encode((texts * (posts // len(texts) + 1))[:posts])
    rows = []
    # The runtimes made for CUDA, of those this device runs: on a dry run, PyTorch fp32 alone.
    for runtime in (n for n, rt in REGISTRY.items() if {"cuda", loaded.device.type} <= rt.devices):
        for size in sizes:
            p = Predictor(loaded, batch_size=size, runtime=runtime)
            p.probabilities(encoded[: size * 2])  # warm-up: cuDNN plans, allocator
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                p.probabilities(encoded)  # ends with a copy to the host: synchronised
                times.append(time.perf_counter() - t0)
            mib = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
            rows.append((runtime, size, posts / statistics.median(times), mib))
    return rows


def gpu_name() -> str:
    if not torch.cuda.is_available():
        return "no CUDA device (dry run on the CPU)"
    try:
        query = ["nvidia-smi", "--query-gpu=name,memory.used,memory.total", "--format=csv,noheader"]
        smi = subprocess.run(query, capture_output=True, text=True, timeout=10)
        return smi.stdout.strip() or torch.cuda.get_device_name()
    except (OSError, subprocess.TimeoutExpired):
        return torch.cuda.get_device_name()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes, CPU allowed")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        print("no CUDA device; use --dry-run to check the script on the CPU", file=sys.stderr)
        return 2
    dry = args.dry_run
    print("command:", shlex.join(["benchmarks/gpu_check.sh", *(["--dry-run"] if dry else [])]))
    print(f"machine: {os.cpu_count()} cores; {gpu_name()}; torch {torch.__version__}")
    t_start = time.monotonic()
    sizes = [256, 512] if dry else [256, 512, 1024, 2048, 4096]
    model_rows = model_only(cuda, 1_000 if dry else 65_536, sizes)
    workers = [1, 2] if dry else [1, 2, 4]
    burst = 300 if dry else 200_000
    seconds = 1.0 if dry else 6.0
    device = "cuda" if cuda else "cpu"
    e2e = []
    with EmbeddedBroker() as broker:
        for n in workers:
            env = {"SENTIMENT_TOKENIZER_PROCESSES": str(n), "SENTIMENT_DEVICE": device,
                   "SENTIMENT_BATCH_MAX_SIZE": "256" if dry else "4096",
                   "SENTIMENT_INFERENCE_BATCH_SIZE": "64" if dry else "4096"}  # fmt: skip
            fig = measure("service", broker.bootstrap, sample_texts(), burst, None, seconds,
                          "default", env, overload=False)  # fmt: skip
            e2e.append((n, fig))

    print("\n| step | setting | posts/s | p50 ms | p99 ms | GPU MiB | goal |")
    print("|---|---|---:|---:|---:|---:|---|")
    for runtime, size, rate, mib in model_rows:
        print(f"| model alone | {runtime}, batch {size} | {rate:,.0f} | | | {mib:,.0f} | "
              f">= {GOAL_MODEL:,} posts/s |")  # fmt: skip
    for n, fig in e2e:
        (rate, (p50, p99)), *_ = fig.latency.items() or [(0.0, (float("nan"),) * 2)]
        print(f"| end to end | {n} segmenter worker(s); latency at {rate:,.0f} posts/s | "
              f"{fig.throughput:,.0f} | {p50:.0f} | {p99:.0f} | | >= {GOAL_E2E:,} posts/s, "
              f"p99 <= {GOAL_P99_MS:.0f} ms; lost {fig.lost} |")  # fmt: skip
    print(f"\nfinished in {time.monotonic() - t_start:.0f} s")
    lost = sum(fig.lost for _, fig in e2e)
    print(json.dumps({"lost": lost, "model_rows": len(model_rows), "e2e_rows": len(e2e)}))
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
