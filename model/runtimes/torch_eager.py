"""PyTorch runs the model itself: fp32 on any device, or under fp16 autocast on CUDA.

torch is the reference the other runtimes are tested against, and the one explanations use,
since they need gradients. Chunks are 256 posts: a GPU wants large batches.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from model.runtimes.runtime import Runtime

if TYPE_CHECKING:
    from model.network import SentimentClassifier
    from model.runtimes.runtime import Forward


def _fp32(model: SentimentClassifier, threads: int) -> Forward:
    # PyTorch's intra-op threads are process-wide (SENTIMENT_TORCH_THREADS), not per runtime.
    return model


def _fp16(model: SentimentClassifier, threads: int) -> Forward:
    import torch

    def forward(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # cuDNN's LSTM runs fp16 under autocast. Autocast is thread-local, so it is entered
        # where the chunk runs.
        with torch.autocast("cuda", dtype=torch.float16):
            return model(ids, lengths)

    return forward


TORCH = Runtime(
    name="torch",
    build=_fp32,
    default_chunk=256,
    devices=frozenset({"cpu", "cuda"}),
    # Last: on the CPU ONNX Runtime and the table runtime are faster for the same
    # probabilities; on CUDA it is the only runtime auto may pick.
    auto_rank=2,
)
# cuDNN's LSTM under fp16 autocast: CUDA only, and never auto's choice.
TORCH_FP16 = replace(
    TORCH, name="torch-fp16", build=_fp16, devices=frozenset({"cuda"}), exact=False, auto_rank=None
)
RUNTIMES = (TORCH, TORCH_FP16)
