"""ONNX Runtime on the CPU, over a graph built from the weights at load time (onnx_graph.py).

`onnx` runs it fp32: the PyTorch model's probabilities, and auto's choice on a CPU with two or
more cores, where its chunks run side by side without the GIL. `onnx-int8` quantises the LSTM
and dense weights to int8 at load. Its activations are quantised with one scale per batch, so
a post's score moves with its batch neighbours (by up to 0.04 measured): a redelivered post
could get another score. Opt in where that is acceptable.

ONNX Runtime's LSTM computes every padded step, so its chunks are small: 16 posts
(benchmarks.chunks).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from model.runtimes.runtime import Runtime

if TYPE_CHECKING:
    from model.network import SentimentClassifier
    from model.runtimes.runtime import Forward

# The poolings onnx_graph builds; attention is left to torch.
ONNX_POOLINGS = ("last", "max", "mean", "max_mean", "end")


def unsupported(model: SentimentClassifier) -> str | None:
    """Why these runtimes cannot run `model`, or None when they can."""
    pooling = model.cfg.pooling
    if pooling not in ONNX_POOLINGS:
        return f"pooling {pooling!r} has no ONNX graph here (only {ONNX_POOLINGS})"
    return None


def _fp32(model: SentimentClassifier, threads: int) -> Forward:
    # Imported here: onnxruntime takes a while to load, and the settings check only needs names.
    from model.runtimes.onnx_graph import OnnxForward

    return OnnxForward(model, int8=False, threads=threads)


def _int8(model: SentimentClassifier, threads: int) -> Forward:
    from model.runtimes.onnx_graph import OnnxForward

    return OnnxForward(model, int8=True, threads=threads)


ONNX = Runtime(name="onnx", build=_fp32, default_chunk=16, refuses=unsupported, auto_rank=1)
# The same graph with int8 weights: faster, but a post's score moves with its batch neighbours.
ONNX_INT8 = replace(ONNX, name="onnx-int8", build=_int8, exact=False, auto_rank=None)
RUNTIMES = (ONNX, ONNX_INT8)
