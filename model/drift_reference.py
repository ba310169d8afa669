"""Reference statistics for drift monitoring, and the Population Stability Index.

Training computes the reference on the validation split and stores it in the artifact; the
service compares a sliding window of live traffic against it with the same bin edges.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

SCORE_EDGES: tuple[float, ...] = tuple(i / 10 for i in range(11))  # ten bins over [0, 1]
LENGTH_EDGES: tuple[float, ...] = (0, 5, 10, 20, 40, 80, 160, 320, math.inf)
# A bin that is empty on one side would make PSI infinite; this floor is the usual remedy.
PSI_FLOOR = 1e-4


def bin_index(value: float, edges: Sequence[float]) -> int:
    """Index of the half-open bin [edges[i], edges[i+1]) holding value; the outer bins catch
    what lies beyond the edges. By bisection: the drift monitor calls it for every post."""
    return min(max(bisect_right(edges, value) - 1, 0), len(edges) - 2)


def histogram(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    counts = [0] * (len(edges) - 1)
    for v in values:
        counts[bin_index(v, edges)] += 1
    return counts


def psi(expected: Sequence[float], actual: Sequence[float], floor: float = PSI_FLOOR) -> float:
    """PSI = sum((a - e) * ln(a / e)) over bins of proportions; counts are normalised here.

    Rules of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift.
    """
    if len(expected) != len(actual):
        raise ValueError("expected and actual need the same number of bins")
    te, ta = float(sum(expected)), float(sum(actual))
    if te <= 0 or ta <= 0:
        return 0.0
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        pe, pa = max(e / te, floor), max(a / ta, floor)
        total += (pa - pe) * math.log(pa / pe)
    return total


@dataclass(frozen=True)
class Reference:
    score_edges: list[float]
    score_counts: list[int]
    length_edges: list[float]
    length_counts: list[int]
    oov_ratio: float
    label_shares: dict[str, float]
    mean_confidence: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # JSON has no infinity; the last length edge is open-ended anyway.
        d["length_edges"] = [e if math.isfinite(e) else None for e in self.length_edges]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reference:
        d = dict(d)
        d["length_edges"] = [math.inf if e is None else float(e) for e in d["length_edges"]]
        return cls(**d)


def build_reference(
    scores: Sequence[float],
    lengths: Sequence[int],
    oov_tokens: int,
    total_tokens: int,
    predicted: Sequence[str],
    confidences: Sequence[float],
    labels: Sequence[str],
) -> Reference:
    n = len(scores)
    return Reference(
        score_edges=list(SCORE_EDGES),
        score_counts=histogram(scores, SCORE_EDGES),
        length_edges=list(LENGTH_EDGES),
        length_counts=histogram([float(x) for x in lengths], LENGTH_EDGES),
        oov_ratio=oov_tokens / total_tokens if total_tokens else 0.0,
        label_shares={lb: (sum(p == lb for p in predicted) / n if n else 0.0) for lb in labels},
        mean_confidence=sum(confidences) / n if n else 0.0,
        n=n,
    )
