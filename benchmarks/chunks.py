"""The forward pass on the CPU by chunk size and threading: the figures behind the defaults
SENTIMENT_INFERENCE_BATCH_SIZE and SENTIMENT_INFERENCE_THREADS.

    python -m benchmarks.chunks [--model default] [--posts 2048] [--chunks 8,16,32,64]

The sample reviews go through the model alone in micro-batches of the service's size, as the
service hands them over, on the runtime auto picks for a CPU with two cores (ONNX Runtime fp32):
- one chunk at a time on one thread, and on two intra-op threads;
- two chunks at once, one thread each (Predictor's chunk_threads).
Beside them: the share of padded steps at each chunk size, and what padding costs, since ONNX
Runtime's LSTM computes every padded step.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from functools import partial

import torch

from benchmarks.harness import median_seconds, sample_texts
from consumer.settings import Settings
from model.artifact import load
from model.encoding import Encoded
from model.predictor import Predictor
from model.runtimes import auto

MICRO_BATCH = Settings.model_fields["batch_max_size"].default
LAYOUTS = (("one chunk, 1 thread", 1, 1), ("one chunk, 2 threads", 2, 1),
           ("two chunks at once, 1 thread each", 1, 2))  # fmt: skip


def padding_share(lengths: list[int], chunk: int) -> float:
    """The share of LSTM steps that are padding when each micro-batch is sorted and chunked."""
    real = padded = 0
    for start in range(0, len(lengths), MICRO_BATCH):
        batch = sorted(max(n, 1) for n in lengths[start : start + MICRO_BATCH])
        for c in range(0, len(batch), chunk):
            part = batch[c : c + chunk]
            real += sum(part)
            padded += max(part) * len(part)
    return 1 - real / padded


def posts_per_second(p: Predictor, batches: list[list[Encoded]], repeats: int) -> float:
    p.predict_encoded(batches[0])  # warm-up

    def every_batch() -> None:
        for b in batches:
            p.predict_encoded(b)

    return sum(len(b) for b in batches) / median_seconds(every_batch, repeats)


def padded_step_cost(p: Predictor, repeats: int) -> tuple[float, float]:
    """ms for 64 posts of 10 tokens, alone and padded to one post of 100 tokens."""
    ids = torch.randint(5, len(p.loaded.vocab.itos), (64, 100))
    short = torch.full((64,), 10)
    padded = short.clone()
    padded[0] = 100
    out = []
    for x, lengths in ((ids[:, :10].contiguous(), short), (ids, padded)):
        p._forward(x, lengths)  # warm-up
        out.append(median_seconds(partial(p._forward, x, lengths), repeats) * 1e3)
    return out[0], out[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--posts", type=int, default=2048)
    ap.add_argument("--chunks", default="8,16,32,64")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    print("command:", shlex.join(["python", "-m", "benchmarks.chunks",
                                  *(argv if argv is not None else sys.argv[1:])]))  # fmt: skip
    torch.set_num_threads(1)
    loaded = load(args.model, device="cpu")
    texts = sample_texts()
    texts = (texts * (args.posts // len(texts) + 1))[: args.posts]
    runtime = auto(torch.device("cpu"), loaded.model, cores=2).name
    encoded = Predictor(loaded).encode(texts)
    batches = [encoded[i : i + MICRO_BATCH] for i in range(0, len(encoded), MICRO_BATCH)]
    lengths = [len(e.ids) for e in encoded]
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"{len(texts)} sample reviews in micro-batches of {MICRO_BATCH}, mean "
          f"{sum(lengths) / len(lengths):.1f} tokens; runtime {runtime}; posts/s\n")  # fmt: skip
    print("| chunk | padded steps | " + " | ".join(name for name, _, _ in LAYOUTS) + " |")
    print("|---:|---:|" + "---:|" * len(LAYOUTS))
    for chunk in (int(c) for c in args.chunks.split(",")):
        cells = []
        for _, threads, at_once in LAYOUTS:
            p = Predictor(loaded, chunk, runtime, threads=threads, chunk_threads=at_once)
            cells.append(f"{posts_per_second(p, batches, args.repeats):,.0f}")
        print(f"| {chunk} | {padding_share(lengths, chunk):.1%} | " + " | ".join(cells) + " |")
    alone, padded = padded_step_cost(Predictor(loaded, 64, runtime), 10 * args.repeats)
    print(f"\n64 posts of 10 tokens: {alone:.1f} ms; padded to one post of 100 tokens: "
          f"{padded:.1f} ms (the LSTM computes every padded step)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
