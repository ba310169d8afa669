"""Batched inference: raw texts in, labels and probabilities out, in input order."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

import torch

from model import runtimes
from model.artifact import LoadedModel
from model.attribution import token_scores, top_tokens
from model.encoding import Encoded, encode
from model.network import SentimentClassifier
from model.runtimes.torch_eager import TORCH
from model.vocab import UNK_ID


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float  # probability of the positive label (binary) or of the predicted label
    probabilities: dict[str, float]
    n_tokens: int
    n_oov: int

    @property
    def confidence(self) -> float:
        return max(self.probabilities.values())


def resolve_runtime(
    runtime: str, device: torch.device, model: SentimentClassifier | None = None, cores: int = 2
) -> str:
    """The name of the runtime to run: `runtime` checked against the device and model, or
    auto's choice for a process with `cores` CPU cores (model.runtimes.resolve)."""
    return runtimes.resolve(runtime, device, model, cores).name


class Predictor:
    """Holds a loaded model on its device and labels lists of texts.

    Texts are sorted by length and cut into batches so each batch pads to a similar length; on
    CUDA each batch is built in pinned host memory and copied with non_blocking=True. The
    forward pass runs on the `runtime` chosen (model.runtimes); explanations always use PyTorch,
    since they need gradients. `threads` is each forward pass's intra-op threads (ONNX Runtime);
    on the CPU, `chunk_threads` > 1 runs that many batches' forward passes at once where the
    runtime allows it (not the table runtime, whose Python steps hold the GIL so that chunks
    side by side only contend). `cores` is how many CPU cores the process may use, which auto
    chooses by.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        batch_size: int = 0,
        runtime: str = TORCH.name,
        threads: int = 1,
        chunk_threads: int = 1,
        cores: int = 2,
    ) -> None:
        if batch_size < 0:
            raise ValueError("batch_size must be >= 0 (0: the runtime's own default_chunk)")
        if chunk_threads < 1:
            raise ValueError("chunk_threads must be >= 1")
        self.loaded = loaded
        self.model = loaded.model.eval()
        self.device = loaded.device
        rt = runtimes.resolve(runtime, self.device, self.model, cores)
        self.runtime = rt.name
        self.batch_size = batch_size or rt.default_chunk
        self._forward = rt.build(self.model, threads)
        # A GPU already runs one batch across its cores; concurrent launches would only contend.
        self._pool: Executor | None = None
        if chunk_threads > 1 and self.device.type == "cpu" and rt.parallel_chunks:
            self._pool = ThreadPoolExecutor(chunk_threads, thread_name_prefix="infer")
        labels = loaded.labels
        self.labels = labels
        # Binary models report P(positive) as the score users threshold on.
        self._score_index = labels.index("positive") if "positive" in labels else None

    def encode(self, texts: list[str]) -> list[Encoded]:
        lm = self.loaded
        return [encode(lm.tokenizer, lm.vocab, lm.max_len, t) for t in texts]

    def probabilities(self, encoded: list[Encoded]) -> torch.Tensor:
        """(N, labels) probabilities on the CPU, rows in the order of `encoded`."""
        return batched_probabilities(
            self._forward, [e.ids for e in encoded], self.batch_size, self.device,
            len(self.labels), self._pool,
        )  # fmt: skip

    def predict_encoded(self, encoded: list[Encoded]) -> list[Prediction]:
        probs = self.probabilities(encoded).tolist()
        results = []
        for enc, row in zip(encoded, probs, strict=True):
            best = max(range(len(row)), key=row.__getitem__)
            score = row[self._score_index] if self._score_index is not None else row[best]
            results.append(
                Prediction(
                    label=self.labels[best],
                    score=score,
                    probabilities=dict(zip(self.labels, row, strict=True)),
                    n_tokens=enc.n_tokens,
                    n_oov=enc.n_oov,
                )
            )
        return results

    def predict(self, texts: list[str]) -> list[Prediction]:
        return self.predict_encoded(self.encode(texts))

    def explain(self, texts: list[str], top_k: int | None = 5) -> list[list[tuple[str, float]]]:
        return self.explain_encoded(self.encode(texts), top_k)

    def explain_encoded(
        self, encoded: list[Encoded], top_k: int | None = 5
    ) -> list[list[tuple[str, float]]]:
        """Per text, the tokens that drove its predicted label, as (token, score) pairs.

        Scores are attention weights under attention pooling, else normalised gradient x input
        (see model.attribution); the top_k by |score| come first, or every kept token in text order
        when top_k is None. Out-of-vocabulary tokens keep their own text. The tokens come from
        the encoding, so nothing is segmented twice. It costs a backward pass, so the service
        calls it only when explanations are switched on.
        """
        scores = token_scores(self.model, [e.ids for e in encoded], self.device, self.batch_size)
        return [top_tokens(e.tokens, s, top_k) for e, s in zip(encoded, scores, strict=True)]


_Chunk = tuple[list[int], torch.Tensor, torch.Tensor]  # row indices, padded ids, lengths


@torch.inference_mode()
def batched_probabilities(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    seqs: list[list[int]],
    batch_size: int,
    device: torch.device,
    n_labels: int,
    pool: Executor | None = None,
) -> torch.Tensor:
    """Softmax outputs for id sequences, batched by length; rows in input order, on the CPU.

    Sorting by length means each batch pads only to its own longest sequence: ONNX Runtime's
    LSTM computes every padded step, and on the CPU a post's cost barely depends on its batch's
    size, so small batches waste less (benchmarks/README.md). With `pool`, batches run
    at once on its threads, each on one core: the forward passes release the GIL, and whole
    batches in parallel use two cores better than one batch's small matrix products split over
    two threads. On CUDA each batch is built in pinned host memory and copied with
    non_blocking=True.
    """
    n = len(seqs)
    probs = torch.empty((n, n_labels), dtype=torch.float32)
    if n == 0:
        return probs
    pin = device.type == "cuda"

    def forward(chunk: _Chunk) -> tuple[list[int], torch.Tensor]:
        idx, ids, lengths = chunk
        with torch.inference_mode():  # thread-local: the pool's threads need it too
            logits = model(ids.to(device, non_blocking=pin), lengths)
            return idx, torch.softmax(logits.float(), dim=-1).cpu()

    chunks: Iterable[_Chunk] = _chunks(seqs, batch_size, pin)
    if pool is not None:
        # Longest first: the last chunks to start are then the shortest, so the threads finish
        # together rather than one running the longest chunk alone (4% end to end).
        chunks = list(chunks)[::-1]
    for idx, out in (pool.map if pool is not None else map)(forward, chunks):
        probs[torch.tensor(idx)] = out
    return probs


def _chunks(seqs: list[list[int]], batch_size: int, pin: bool) -> Iterator[_Chunk]:
    """(row indices, padded ids, lengths) per batch of similar lengths."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    for start in range(0, len(seqs), batch_size):
        idx = order[start : start + batch_size]
        # An empty text still needs one step through the LSTM; it reads as one <unk>.
        batch = [seqs[i] or [UNK_ID] for i in idx]
        width = max(len(s) for s in batch)
        # One tensor from padded rows: building one small tensor per row cost more than the
        # LSTM on short posts.
        ids = torch.tensor([s + [0] * (width - len(s)) for s in batch], dtype=torch.long)
        if pin:
            ids = ids.pin_memory()
        yield idx, ids, torch.tensor([len(s) for s in batch], dtype=torch.long)
