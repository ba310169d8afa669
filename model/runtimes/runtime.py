"""A runtime's facts in one record: where it runs, how it runs, and when auto picks it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from torch import Tensor

    from model.network import SentimentClassifier

    # (ids (B, T) padded, lengths (B,)) -> logits (B, N)
    Forward: TypeAlias = Callable[[Tensor, Tensor], Tensor]


def _runs_any(model: SentimentClassifier) -> str | None:
    return None


def _suits_any(model: SentimentClassifier | None, cores: int) -> bool:
    return True


@dataclass(frozen=True)
class Runtime:
    """How the forward pass runs. The artifact is fp32 safetensors whatever the runtime.

    `build(model, threads)` makes the forward pass; `threads` is its intra-op threads where the
    runtime has its own (ONNX Runtime). `refuses(model)` says why the runtime cannot run a
    model, or None. auto tries the runtimes that have an `auto_rank`, lowest first, and takes
    the first that runs on the device, accepts the model and `auto_suits` it with the process's
    cores; a runtime without one runs only when asked for by name. The defaults describe an
    exact CPU runtime whose chunks may run side by side; a record states what differs.
    """

    name: str
    build: Callable[[SentimentClassifier, int], Forward]
    # Posts per forward-pass chunk when none is given.
    default_chunk: int
    devices: frozenset[str] = frozenset({"cpu"})  # torch device types: "cpu", "cuda"
    # Whether a batch's chunks may run side by side on CPU threads: only when the forward pass
    # releases the GIL for most of its time.
    parallel_chunks: bool = True
    # Whether it computes PyTorch fp32's probabilities to float rounding (tests hold it to 1e-5);
    # reduced precision, int8 weights or fp16 activations, moves a post's score.
    exact: bool = True
    refuses: Callable[[SentimentClassifier], str | None] = _runs_any
    auto_rank: int | None = None
    auto_suits: Callable[[SentimentClassifier | None, int], bool] = _suits_any
