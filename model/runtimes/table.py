"""The table runtime: fp32 on the CPU, the input side folded into lookup tables at load.

The embedding and the LSTM's input projection become one (V, 4H) table per direction; the
recurrence runs in PyTorch over live rows only (table_lstm.py). The same probabilities for about
70% of ONNX Runtime's CPU time, on one core. Its Python step per time step holds the GIL, so its
chunks cannot share a second core the way ONNX Runtime's do; it computes no padded step and pays
a Python step per time step and chunk, so its chunks are large: 256 posts.

Single-layer LSTMs, with or without peepholes, with last, max, mean, max_mean or end pooling and
with or without a tanh layer in the head: a second layer's input is not a token, and attention
needs every output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model.runtimes.runtime import Runtime

if TYPE_CHECKING:
    from model.network import SentimentClassifier
    from model.runtimes.runtime import Forward

TABLE_POOLINGS = ("last", "max", "mean", "max_mean", "end")
# Above this the lookup tables cost more memory than auto should spend.
MAX_AUTO_TABLE_BYTES = 512 * 2**20


def unsupported(model: SentimentClassifier) -> str | None:
    """Why this runtime cannot run `model`, or None when it can."""
    cfg = model.cfg
    if cfg.num_layers != 1:
        return f"it folds one LSTM layer, and this model has {cfg.num_layers}"
    if cfg.pooling not in TABLE_POOLINGS:
        return f"pooling {cfg.pooling!r} needs every output (only {TABLE_POOLINGS})"
    return None


def table_bytes(model: SentimentClassifier) -> int:
    """V x 4H float32 per direction (87 MB for the shipped model); under end pooling the backward
    direction's is V x H (model.runtimes.first_step)."""
    cfg = model.cfg
    per_id = 4 * cfg.hidden_size
    if cfg.bidirectional:
        per_id += cfg.hidden_size if cfg.pooling == "end" else 4 * cfg.hidden_size
    return cfg.vocab_size * per_id * 4


def _build(model: SentimentClassifier, threads: int) -> Forward:
    from model.runtimes.table_lstm import TableForward

    return TableForward(model)


def _suits(model: SentimentClassifier | None, cores: int) -> bool:
    # One core: the table runtime drained a backlog 1.2-1.5x faster than ONNX Runtime. Two
    # cores: level, since ONNX Runtime's chunks run side by side without the GIL, and only
    # they can use more (python -m benchmarks.capacity, benchmarks/README.md).
    return cores <= 1 and model is not None and table_bytes(model) <= MAX_AUTO_TABLE_BYTES


TABLE = Runtime(
    name="table",
    build=_build,
    default_chunk=256,
    parallel_chunks=False,  # its Python step per time step holds the GIL
    refuses=unsupported,
    auto_rank=0,
    auto_suits=_suits,
)
RUNTIMES = (TABLE,)
