"""Where a post's time goes, in process, stage by stage: the ceiling any consumer design meets.

    python -m benchmarks.stages [--model default] [--posts 1730] [--threads 1]

On the shipped sample reviews: decoding the JSON, normalising and segmenting with jieba, looking
up the vocabulary, the forward pass in length-sorted chunks (as the service runs it) and one post
at a time (as the naive loop does), and encoding the result. Each figure is the median of
--repeats passes, in milliseconds per post. The last lines turn them into ceilings: the posts/s
of the model alone, and of segmentation plus the model on a given number of cores, which no
batching, threading or broker can beat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from model.artifact import load
from model.predictor import Predictor, batched_probabilities
from model.text import normalize

SAMPLES = Path(__file__).resolve().parents[1] / "consumer" / "samples" / "reviews.jsonl"


def per_post_ms(fn: Callable[[], object], n: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / n * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--posts", type=int, default=1730)
    ap.add_argument("--threads", type=int, default=1, help="PyTorch threads (the service's 1)")
    ap.add_argument("--chunk", type=int, default=64, help="forward-pass chunk (the service's 64)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("command:", shlex.join(["python", "-m", "benchmarks.stages", *(argv or sys.argv[1:])]))
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f}; torch threads {args.threads}")  # fmt: skip

    raw = SAMPLES.read_text(encoding="utf-8").splitlines()[: args.posts]
    texts = [json.loads(line)["text"] for line in raw]
    n = len(texts)
    predictor = Predictor(load(args.model), batch_size=args.chunk)
    lm = predictor.loaded
    encoded = predictor.encode(texts)  # also warms jieba's dictionary
    seqs = [e.ids for e in encoded]
    tokens = [lm.tokenizer.tokenize(t) for t in texts]
    one_at_a_time = seqs[: min(n, 300)]

    def forward_one() -> None:
        for s in one_at_a_time:
            batched_probabilities(predictor.model, [s], 1, predictor.device, len(lm.labels))

    stages = {
        "JSON decode": per_post_ms(lambda: [json.loads(r) for r in raw], n, args.repeats),
        "normalise": per_post_ms(lambda: [normalize(t) for t in texts], n, args.repeats),
        "normalise + jieba": per_post_ms(
            lambda: [lm.tokenizer.tokenize(t) for t in texts], n, args.repeats
        ),
        "vocabulary lookup": per_post_ms(
            lambda: [lm.vocab.encode(t, lm.max_len) for t in tokens], n, args.repeats
        ),
        f"BiLSTM, chunks of {args.chunk}": per_post_ms(
            lambda: batched_probabilities(
                predictor.model, seqs, args.chunk, predictor.device, len(lm.labels)
            ),
            n,
            args.repeats,
        ),
        "BiLSTM, one post at a time": per_post_ms(forward_one, len(one_at_a_time), args.repeats),
        "JSON encode of the result": per_post_ms(
            lambda: [json.dumps({"id": i, "label": "positive", "score": 0.5}) for i in range(n)],
            n,
            args.repeats,
        ),
    }
    print(f"\n{n} posts, mean {sum(map(len, seqs)) / n:.1f} tokens after the vocabulary\n")
    print("| stage | ms per post |")
    print("|---|---:|")
    for name, ms in stages.items():
        print(f"| {name} | {ms:.3f} |")
    model = stages[f"BiLSTM, chunks of {args.chunk}"]
    segment = stages["normalise + jieba"] + stages["vocabulary lookup"]
    cores = os.cpu_count() or 1
    print(f"\nceiling, the batched model alone on one core: {1e3 / model:.0f} posts/s")
    print(
        f"ceiling, segmentation and the batched model on {cores} cores, nothing else running: "
        f"{cores * 1e3 / (segment + model):.0f} posts/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
