"""Classification metrics in plain numpy, so evaluation needs nothing beyond the runtime deps."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> np.ndarray:
    cm = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm  # rows: true label, columns: predicted


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, from (0,0) to (1,1)."""
    order = np.argsort(-scores, kind="mergesort")
    y, s = y_true[order], scores[order]
    distinct = np.r_[np.where(np.diff(s))[0], y.size - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    pos, neg = max(int(y.sum()), 1), max(int(y.size - y.sum()), 1)
    return np.r_[0.0, fps / neg], np.r_[0.0, tps / pos]


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; ties get half credit (the Mann-Whitney statistic)."""
    pos = scores[y_true == 1]
    neg = scores[y_true == 0]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    ranks = _average_ranks(np.r_[pos, neg])
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size, dtype=np.float64)
    xs = x[order]
    i = 0
    while i < x.size:
        j = i
        while j + 1 < x.size and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width confidence bins of the top-label probability."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def ece_floor(probs: np.ndarray, draws: int = 500, seed: int = 0) -> float:
    """The mean ECE of a perfectly calibrated model with these probabilities on this many rows:
    labels drawn from the probabilities themselves. ECE is biased upwards on small sets (about
    0.05 on social_dev's 119 rows), so a figure near this floor shows no miscalibration."""
    rng = np.random.default_rng(seed)
    cum = probs.cumsum(axis=1)
    total = 0.0
    for _ in range(draws):
        y = (rng.random((len(probs), 1)) > cum).sum(axis=1)
        total += expected_calibration_error(probs, np.minimum(y, probs.shape[1] - 1))
    return total / draws


def classification_report(
    y_true: np.ndarray, probs: np.ndarray, labels: tuple[str, ...]
) -> dict[str, Any]:
    """accuracy, macro-F1, ROC-AUC (binary: P(positive); else macro one-vs-rest), per label."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = probs.argmax(axis=1)
    n_labels = len(labels)
    cm = confusion_matrix(y_true, y_pred, n_labels)
    per_label: dict[str, dict[str, float]] = {}
    f1s = []
    for i, name in enumerate(labels):
        tp = cm[i, i]
        precision = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        recall = tp / cm[i, :].sum() if cm[i, :].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(cm[i, :].sum()),
        }
        f1s.append(f1)
    pos = labels.index("positive") if "positive" in labels and n_labels == 2 else None
    if pos is not None:
        auc = roc_auc((y_true == pos).astype(np.int64), probs[:, pos])
    else:
        auc = float(
            np.nanmean(
                [roc_auc((y_true == i).astype(np.int64), probs[:, i]) for i in range(n_labels)]
            )
        )
    return {
        "n": int(y_true.size),
        "accuracy": float((y_pred == y_true).mean()) if y_true.size else float("nan"),
        "macro_f1": float(np.mean(f1s)),
        "roc_auc": auc,
        "ece": expected_calibration_error(probs, y_true),
        "per_label": per_label,
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
    }
