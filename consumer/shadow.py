"""Shadow scoring: a candidate model labels the same batches as the live one, for comparison.

The candidate is any artifact, with its own vocabulary, text pipeline and segmenter (an older
model, or one fine-tuned on this week's labels): it encodes each post its own way, in the poll
loop's thread. Where it encodes exactly as the live model does (the same tokenizer config,
vocabulary and length cap, as a candidate fine-tuned from the live model does), it takes the
live encoding of the batch instead, and costs only its forward pass. Its labels never reach the
output topic; what it yields is, over the drift window (the same count and age bounds), the
share of posts where its label equals the live one and the PSI of its scores against the live
scores. With SENTIMENT_SHADOW_IN_RESULTS each result also carries the candidate's label, score
and version. A failure of the candidate costs only its own figures.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from typing import NamedTuple

from consumer import metrics
from model.artifact import LoadedModel
from model.drift_reference import SCORE_EDGES, bin_index, psi
from model.encoding import Encoded
from model.predictor import Prediction, Predictor

log = logging.getLogger(__name__)


class _Pair(NamedTuple):
    at: float
    agree: bool
    live_bin: int
    shadow_bin: int


def encodes_alike(a: LoadedModel, b: LoadedModel) -> bool:
    """Whether the two models turn every text into the same Encoded (tokens, ids, counts)."""
    return (
        a.tokenizer.config == b.tokenizer.config
        and a.max_len == b.max_len
        and a.vocab.char_fallback == b.vocab.char_fallback
        and a.vocab.itos == b.vocab.itos
    )


class Shadow:
    def __init__(
        self, candidate: Predictor, live: LoadedModel, window_size: int, window_seconds: float
    ) -> None:
        self.candidate = candidate
        self.version = candidate.loaded.version
        self.reuses_encoding = encodes_alike(candidate.loaded, live)
        self.window_size = window_size
        self.window_seconds = window_seconds
        self._pairs: deque[_Pair] = deque()
        self._agree = 0
        self._live = [0] * (len(SCORE_EDGES) - 1)
        self._shadow = [0] * (len(SCORE_EDGES) - 1)
        metrics.SHADOW_INFO.info({"version": self.version, "path": str(candidate.loaded.path)})

    def score(self, texts: list[str], encoded: list[Encoded]) -> list[Prediction] | None:
        """The candidate's predictions for the texts, whose live encodings are `encoded`, or
        None if it failed on them."""
        try:
            if self.reuses_encoding:
                return self.candidate.predict_encoded(encoded)
            return self.candidate.predict(texts)
        except Exception as e:  # the live results must go out whatever the candidate does
            metrics.SHADOW_ERRORS.inc()
            log.warning("shadow model %s failed on a batch of %d: %s", self.version, len(texts), e)
            return None

    def update(
        self, live: list[Prediction], shadow: list[Prediction], now: float | None = None
    ) -> None:
        """Add one delivered batch's pairs, evict what left the window, refresh the gauges."""
        at = time.monotonic() if now is None else now
        for a, b in zip(live, shadow, strict=True):
            pair = _Pair(
                at,
                a.label == b.label,
                bin_index(a.score, SCORE_EDGES),
                bin_index(b.score, SCORE_EDGES),
            )
            self._pairs.append(pair)
            self._apply(pair, +1)
        pairs = self._pairs
        while pairs and (
            (self.window_size and len(pairs) > self.window_size)
            or (self.window_seconds and pairs[0].at < at - self.window_seconds)
        ):
            self._apply(pairs.popleft(), -1)
        n = len(pairs)
        metrics.SHADOW_AGREEMENT.set(self._agree / n if n else math.nan)
        metrics.SHADOW_PSI.set(psi(self._live, self._shadow) if n else math.nan)

    @property
    def agreement(self) -> float:
        return self._agree / len(self._pairs) if self._pairs else math.nan

    def _apply(self, pair: _Pair, sign: int) -> None:
        self._agree += sign * pair.agree
        self._live[pair.live_bin] += sign
        self._shadow[pair.shadow_bin] += sign
