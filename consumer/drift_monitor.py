"""Sliding-window drift monitor: recent traffic against the model artifact's reference.

The window holds the most recent posts, bounded by a count and/or a time span. Each batch adds
its posts and evicts the ones that fell out of the window, adjusting running bin counts and sums;
nothing is recomputed from the whole window. The gauges then read PSI, OOV ratio, label shares
and mean confidence straight from those running totals.

A window that is empty or smaller than `min_posts` publishes NaN rather than a number: PSI over
a handful of posts is dominated by empty bins and would read as a severe shift.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

from consumer import metrics
from model.drift_reference import LENGTH_EDGES, SCORE_EDGES, Reference, bin_index, psi
from model.predictor import Prediction

log = logging.getLogger(__name__)

# Confidences are summed as integer micro-units so that adding and evicting the same posts for
# days leaves no floating-point residue in the running sum.
_CONF_SCALE = 1_000_000


class _Post(NamedTuple):
    at: float
    score_bin: int
    length_bin: int
    n_kept: int  # tokens left after truncation, the OOV ratio's denominator
    n_oov: int
    label: str
    confidence: int  # micro-units


@dataclass(frozen=True)
class WindowStats:
    """What the gauges show, for logs and tests."""

    posts: int
    score_psi: float
    length_psi: float
    oov_ratio: float
    label_shares: dict[str, float]
    mean_confidence: float


class DriftMonitor:
    """Keeps running statistics of a sliding window of predictions and publishes them.

    `window_size` bounds the window by posts and `window_seconds` by age; 0 disables a bound,
    and at least one must be set. Call `update` once per batch, with an empty list on an idle
    poll so that the time bound also ages the window when no traffic arrives. Pass the model's
    `max_len` so the OOV ratio has the reference's denominator (tokens kept after truncation).
    """

    def __init__(
        self,
        reference: Reference | None,
        labels: tuple[str, ...],
        window_size: int,
        window_seconds: float,
        *,
        min_posts: int = 100,
        max_len: int | None = None,
    ) -> None:
        if window_size < 0 or window_seconds < 0:
            raise ValueError("window_size and window_seconds must be >= 0")
        if window_size == 0 and window_seconds == 0:
            raise ValueError("set window_size or window_seconds (or both); 0 disables a bound")
        self.reference = reference
        self.labels = labels
        self.window_size = window_size
        self.window_seconds = window_seconds
        self.min_posts = min(min_posts, window_size) if window_size else min_posts
        # The reference's OOV ratio counts the tokens kept after truncation to max_len, which is
        # also what Prediction.n_oov counts; pass the model's max_len to compare like for like.
        self.max_len = max_len
        if reference is None:
            log.warning("the model artifact has no reference.json: drift PSI will read NaN")
        # Bin by the reference's own edges so the comparison is like for like.
        self._score_edges = reference.score_edges if reference else list(SCORE_EDGES)
        self._length_edges = reference.length_edges if reference else list(LENGTH_EDGES)
        self._posts: deque[_Post] = deque()
        self._score_counts = [0] * (len(self._score_edges) - 1)
        self._length_counts = [0] * (len(self._length_edges) - 1)
        self._tokens = 0
        self._oov = 0
        self._label_counts: dict[str, int] = dict.fromkeys(labels, 0)
        self._confidence = 0
        metrics.OOV_RATIO.labels(window="reference").set(
            reference.oov_ratio if reference else math.nan
        )
        self._publish()

    def update(self, predictions: list[Prediction], now: float | None = None) -> None:
        """Add one batch's predictions, evict what left the window, and refresh the gauges."""
        at = time.monotonic() if now is None else now
        for p in predictions:
            post = _Post(
                at=at,
                score_bin=bin_index(p.score, self._score_edges),
                length_bin=bin_index(p.n_tokens, self._length_edges),
                n_kept=min(p.n_tokens, self.max_len) if self.max_len else p.n_tokens,
                n_oov=p.n_oov,
                label=p.label,
                confidence=round(p.confidence * _CONF_SCALE),
            )
            self._posts.append(post)
            self._apply(post, +1)
        self._evict(at)
        self._publish()

    def stats(self) -> WindowStats:
        n = len(self._posts)
        enough = n >= max(self.min_posts, 1)
        ref = self.reference
        return WindowStats(
            posts=n,
            score_psi=psi(ref.score_counts, self._score_counts) if ref and enough else math.nan,
            length_psi=(
                psi(ref.length_counts, self._length_counts) if ref and enough else math.nan
            ),
            oov_ratio=self._oov / self._tokens if self._tokens else math.nan,
            label_shares={lb: c / n if n else math.nan for lb, c in self._label_counts.items()},
            mean_confidence=self._confidence / _CONF_SCALE / n if n else math.nan,
        )

    def _evict(self, now: float) -> None:
        posts = self._posts
        while posts and (
            (self.window_size and len(posts) > self.window_size)
            or (self.window_seconds and posts[0].at < now - self.window_seconds)
        ):
            self._apply(posts.popleft(), -1)

    def _apply(self, post: _Post, sign: int) -> None:
        self._score_counts[post.score_bin] += sign
        self._length_counts[post.length_bin] += sign
        self._tokens += sign * post.n_kept
        self._oov += sign * post.n_oov
        self._label_counts[post.label] = self._label_counts.get(post.label, 0) + sign
        self._confidence += sign * post.confidence

    def _publish(self) -> None:
        s = self.stats()
        metrics.DRIFT_PSI.labels(feature="score").set(s.score_psi)
        metrics.DRIFT_PSI.labels(feature="token_length").set(s.length_psi)
        metrics.OOV_RATIO.labels(window="recent").set(s.oov_ratio)
        for label, share in s.label_shares.items():
            metrics.LABEL_SHARE.labels(label=label).set(share)
        metrics.MEAN_CONFIDENCE.set(s.mean_confidence)
        metrics.DRIFT_WINDOW_POSTS.set(s.posts)
