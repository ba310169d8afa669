"""The labelling queue: which results go to the review topic for a person to label.

Two reasons, one per result: `low_confidence` (its confidence is below
SENTIMENT_REVIEW_MAX_CONFIDENCE: the posts a new domain or new slang trips the model on) and
`random` (a share SENTIMENT_REVIEW_SAMPLE_RATE of all results: the unbiased sample that a fair
accuracy estimate needs; low-confidence samples alone would make the model look worse than it
is). `low_confidence` wins when both apply. A token bucket caps the total at
SENTIMENT_REVIEW_MAX_PER_SECOND, so a drifting stream, where most posts are low-confidence,
cannot flood the people who label; what the cap drops is counted.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import StrEnum

from consumer import metrics


class ReviewReason(StrEnum):
    LOW_CONFIDENCE = "low_confidence"
    RANDOM = "random"


class ReviewSampler:
    def __init__(
        self,
        max_confidence: float,
        sample_rate: float,
        max_per_second: float,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_confidence = max_confidence
        self.sample_rate = sample_rate
        self.max_per_second = max_per_second
        self._rng = rng or random.Random()
        self._clock = clock
        self._tokens = max_per_second  # a second's worth may go at once
        self._at = clock()

    def reason(self, confidence: float) -> ReviewReason | None:
        """The reason to send this result for review, or None; the cap applies here."""
        if confidence < self.max_confidence:
            why = ReviewReason.LOW_CONFIDENCE
        elif self.sample_rate and self._rng.random() < self.sample_rate:
            why = ReviewReason.RANDOM
        else:
            return None
        now = self._clock()
        self._tokens = min(self.max_per_second,
                           self._tokens + (now - self._at) * self.max_per_second)  # fmt: skip
        self._at = now
        if self._tokens < 1:
            metrics.REVIEW_DROPPED.inc()
            return None
        self._tokens -= 1
        return why
