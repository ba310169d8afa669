"""Imbalance handling by oversampling: repeat minority-class rows up to the majority's count.

The alternative, loss weights, is `TrainConfig.class_weights = "balanced"` in training.train.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import TypeVar

T = TypeVar("T")


def oversample(rows: list[T], y: list[int], seed: int = 13) -> tuple[list[T], list[int]]:
    """Every class grows to the largest class's size by sampling its rows with replacement.

    Each original row is kept once; only the extra copies are drawn at random, so a class is
    never under-represented by bad luck. The result is shuffled.
    """
    if len(rows) != len(y):
        raise ValueError(f"{len(rows)} rows but {len(y)} labels")
    by_class: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(y):
        by_class[label].append(i)
    if not by_class:
        return [], []
    rng = random.Random(seed)
    target = max(len(ix) for ix in by_class.values())
    picked: list[int] = []
    for ix in by_class.values():
        picked.extend(ix)
        picked.extend(rng.choices(ix, k=target - len(ix)))
    rng.shuffle(picked)
    return [rows[i] for i in picked], [y[i] for i in picked]
