"""Batched inference: raw texts in, labels and probabilities out, in input order."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.artifact import LoadedModel
from model.encoding import Encoded, encode
from model.explain import token_scores, top_tokens
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


class Predictor:
    """Holds a loaded model on its device and labels lists of texts.

    Texts are sorted by length and cut into batches so each batch pads to a similar length; on
    CUDA each batch is built in pinned host memory and copied with non_blocking=True.
    """

    def __init__(self, loaded: LoadedModel, batch_size: int = 256) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.loaded = loaded
        self.model = loaded.model.eval()
        self.device = loaded.device
        self.batch_size = batch_size
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
            self.model, [e.ids for e in encoded], self.batch_size, self.device, len(self.labels)
        )

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
        """Per text, the tokens that drove its predicted label, as (token, score) pairs.

        Scores are attention weights under attention pooling, else normalised gradient x input
        (see model.explain); the top_k by |score| come first, or every kept token in text order
        when top_k is None. Out-of-vocabulary tokens keep their own text. It costs a backward
        pass, so the service calls it only when explanations are switched on.
        """
        lm = self.loaded
        tokens = [lm.tokenizer.tokenize(t)[: lm.max_len] for t in texts]
        seqs = [lm.vocab.encode(t, lm.max_len) for t in tokens]
        scores = token_scores(self.model, seqs, self.device, self.batch_size)
        return [top_tokens(t, s, top_k) for t, s in zip(tokens, scores, strict=True)]


@torch.inference_mode()
def batched_probabilities(
    model: torch.nn.Module,
    seqs: list[list[int]],
    batch_size: int,
    device: torch.device,
    n_labels: int,
) -> torch.Tensor:
    """Softmax outputs for id sequences, batched by length; rows in input order, on the CPU.

    Sorting by length means each batch pads only to its own longest sequence. On CUDA each batch
    is built in pinned host memory and copied with non_blocking=True.
    """
    n = len(seqs)
    probs = torch.empty((n, n_labels), dtype=torch.float32)
    if n == 0:
        return probs
    pin = device.type == "cuda"
    order = sorted(range(n), key=lambda i: len(seqs[i]))
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        # An empty text still needs one step through the LSTM; it reads as one <unk>.
        batch = [seqs[i] or [UNK_ID] for i in idx]
        width = max(len(s) for s in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long, pin_memory=pin)
        for row, s in enumerate(batch):
            ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
        lengths = torch.tensor([len(s) for s in batch], dtype=torch.long)
        logits = model(ids.to(device, non_blocking=pin), lengths)
        probs[torch.tensor(idx)] = torch.softmax(logits.float(), dim=-1).cpu()
    return probs
