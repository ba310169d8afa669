"""The strongest linear model here: TF-IDF of characters 1-4 and words 1-2 + logistic regression.

Texts are normalised first as the classifier's pipeline does (NFKC, Traditional to Simplified,
placeholders), words come from the same tokenizer, and rows may carry weights (social posts
weighted up beside the reviews). It is a baseline in training.experiments.compare, and the
teacher whose cross-fitted probabilities the BiLSTM is distilled from (TrainConfig.distill).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from model.text import Tokenizer, TokenizerConfig, normalize
from training.data import Dataset


class LinearModel:
    def __init__(self, c: float = 4.0, tokenizer: Tokenizer | None = None) -> None:
        self.c = c
        self.tokenizer = tokenizer or Tokenizer(TokenizerConfig())
        self._fitted: Any = None

    def _features(self, texts: Sequence[str], fit: bool) -> Any:
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer

        t2s = self.tokenizer.config.t2s
        chars = [normalize(t, t2s) for t in texts]
        words = [" ".join(w) for w in self.tokenizer.tokenize_many(list(texts))]
        if fit:
            self._char = TfidfVectorizer(analyzer="char", ngram_range=(1, 4), min_df=2,
                                         sublinear_tf=True)  # fmt: skip
            self._word = TfidfVectorizer(token_pattern=r"\S+", lowercase=False, ngram_range=(1, 2),
                                         min_df=2, sublinear_tf=True)  # fmt: skip
            return hstack(
                [self._char.fit_transform(chars), self._word.fit_transform(words)]
            ).tocsr()
        return hstack([self._char.transform(chars), self._word.transform(words)]).tocsr()

    def fit(
        self, texts: Sequence[str], y: Sequence[int], weights: Sequence[float] | None = None
    ) -> LinearModel:
        from sklearn.linear_model import LogisticRegression

        x = self._features(texts, fit=True)
        self._fitted = LogisticRegression(C=self.c, max_iter=3000)
        self._fitted.fit(
            x, np.asarray(y), sample_weight=None if weights is None else np.asarray(weights)
        )
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._fitted.predict_proba(self._features(texts, fit=False)))


def fit_weighted(
    general: Dataset, in_domain: Sequence[Dataset], weight: float = 10.0
) -> LinearModel:
    """The linear model on a general set plus in-domain sets whose rows count `weight` times,
    as the shipped recipes weigh our social posts beside the reviews."""
    texts = general.texts + [t for ds in in_domain for t in ds.texts]
    y = general.label_ids() + [i for ds in in_domain for i in ds.label_ids()]
    weights = [1.0] * len(general) + [weight] * (len(texts) - len(general))
    return LinearModel().fit(texts, y, weights)


def cross_fit(
    texts: Sequence[str],
    y: Sequence[int],
    weights: Sequence[float] | None = None,
    folds: int = 5,
    seed: int = 13,
    tokenizer: Tokenizer | None = None,
) -> np.ndarray:
    """Each row's probabilities from a model that did not see it: what a teacher may give its
    student for the rows the student trains on."""
    rng = np.random.default_rng(seed)
    fold = rng.integers(0, folds, len(texts))
    out = np.zeros((len(texts), 2))
    w = None if weights is None else np.asarray(weights)
    for k in range(folds):
        held = [int(i) for i in np.flatnonzero(fold == k)]
        kept = [int(i) for i in np.flatnonzero(fold != k)]
        m = LinearModel(tokenizer=tokenizer).fit(
            [texts[i] for i in kept],
            [y[i] for i in kept],
            None if w is None else w[kept].tolist(),
        )
        out[held] = m.predict_proba([texts[i] for i in held])
    return out
