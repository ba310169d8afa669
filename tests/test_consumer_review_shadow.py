"""The labelling queue and shadow scoring, through a real broker.

Review records belong to their batch: each is its result plus `review_reason`, and the set of
posts sampled follows from the results themselves. A shadow candidate never changes a result;
its agreement metric must equal the agreement computed offline from both models' predictions.
"""

from __future__ import annotations

import dataclasses
import json
import random

import pytest
import torch
from confluent_kafka.admin import AdminClient

from consumer import metrics
from consumer.embedded_broker import create_topics
from consumer.review import ReviewReason, ReviewSampler
from consumer.shadow import Shadow, encodes_alike
from model import artifact
from model.network import ClassifierConfig, SentimentClassifier
from model.predictor import Predictor
from model.text import Tokenizer, TokenizerConfig
from model.vocab import Vocab
from tests.conftest import (
    committed_total,
    encode,
    ids_of,
    posts,
    produce,
    read_all,
    unique,
    wait_for,
)

N = 400


def results_by_id(bootstrap, topic):
    return {r["id"]: r for r in (json.loads(m.value()) for m in read_all(bootstrap, topic))}


@pytest.mark.integration
def test_review_topic_holds_exactly_the_low_confidence_results_with_their_reason(
    kafka_bootstrap, make_topics, start_service
):
    topics, group, review = make_topics(3), unique("group"), unique("review")
    create_topics(AdminClient({"bootstrap.servers": kafka_bootstrap}), {review: 1})
    # Every result below 0.9 confidence, no random share, no cap that could bind here.
    svc = start_service(topics, group, review_topic=review, review_max_confidence=0.9,
                        review_sample_rate=0.0, review_max_per_second=100000)  # fmt: skip
    rows = posts(N)
    produce(kafka_bootstrap, topics.input, encode(rows))
    wait_for(lambda: committed_total(kafka_bootstrap, group, topics.input) == N, 120,
             "the whole input committed")  # fmt: skip
    results = results_by_id(kafka_bootstrap, topics.output)
    want = {i for i, r in results.items() if max(r["probabilities"].values()) < 0.9}
    assert 0 < len(want) < N  # the bound splits this stream, so the check can fail both ways
    reviews = read_all(kafka_bootstrap, review)
    assert sorted(ids_of(reviews)) == sorted(want)  # each sampled result once, nothing else
    for m in reviews:
        r = json.loads(m.value())
        assert r.pop("review_reason") == "low_confidence"
        assert r == results[r["id"]]  # the result record itself
    count = svc.metric("sentiment_review_samples_total", {"reason": "low_confidence"})
    assert count == len(want)
    assert svc.stop() == 0


def test_review_sampler_reasons_random_share_and_cap():
    now = [0.0]
    s = ReviewSampler(0.65, 0.25, max_per_second=10, rng=random.Random(7), clock=lambda: now[0])
    assert s.reason(0.6) == ReviewReason.LOW_CONFIDENCE  # wins whatever the draw
    picks = [s.reason(0.99) for _ in range(40)]
    randoms = sum(p == ReviewReason.RANDOM for p in picks)
    assert 0 < randoms <= 9  # a quarter of 40 on average, and the bucket holds 9 more
    before = metrics.REGISTRY.get_sample_value("sentiment_review_dropped_total") or 0.0
    for _ in range(20):  # the bucket is empty now; at most what refills may pass
        s.reason(0.1)
    dropped = metrics.REGISTRY.get_sample_value("sentiment_review_dropped_total") - before
    assert dropped >= 20 - (10 - 1 - randoms)
    now[0] += 1.0  # a second later: ten more may go
    assert [s.reason(0.1) for _ in range(10)].count(ReviewReason.LOW_CONFIDENCE) == 10
    assert s.reason(0.1) is None


@pytest.fixture(scope="module")
def other_model(tmp_path_factory):
    """A small, untrained artifact with the legacy text pipeline (jieba, no conversion): a
    candidate with its own vocabulary, pipeline and segmenter."""
    texts = [r["text"] for r in posts(200)]
    tok = Tokenizer(TokenizerConfig.from_dict({}))
    vocab = Vocab.build(tok.tokenize_many(texts), min_freq=1)
    torch.manual_seed(3)
    model = SentimentClassifier(ClassifierConfig(len(vocab), embed_dim=16, hidden_size=16))
    path = tmp_path_factory.mktemp("candidate")
    artifact.save(path, model, vocab, 64, tok.config)
    return str(path)


@pytest.mark.integration
@pytest.mark.parametrize("candidate", ["live", "other"])
def test_shadow_agreement_equals_the_offline_agreement(
    kafka_bootstrap, make_topics, start_service, model_name, other_model, candidate
):
    shadow = model_name if candidate == "live" else other_model
    topics, group = make_topics(3), unique("group")
    svc = start_service(topics, group, shadow_model=shadow, shadow_in_results="true",
                        drift_window_size=100_000, drift_window_seconds=3600)  # fmt: skip
    rows = posts(N)
    produce(kafka_bootstrap, topics.input, encode(rows))
    wait_for(lambda: committed_total(kafka_bootstrap, group, topics.input) == N, 120,
             "the whole input committed")  # fmt: skip
    results = results_by_id(kafka_bootstrap, topics.output)
    live = Predictor(artifact.load(model_name), runtime="auto")
    cand = Predictor(artifact.load(shadow), runtime="auto")
    texts = [r["text"] for r in rows]
    offline = [a.label == b.label for a, b in zip(live.predict(texts), cand.predict(texts),
                                                 strict=True)]  # fmt: skip
    agreement = sum(offline) / N
    wait_for(lambda: svc.metric("sentiment_drift_window_posts") == N, 30,
             "the window to hold every delivered post")  # fmt: skip
    assert svc.metric("sentiment_shadow_agreement_ratio") == pytest.approx(agreement, abs=1e-12)
    if candidate == "live":
        assert agreement == 1.0
        assert svc.metric("sentiment_shadow_score_psi") == pytest.approx(0.0, abs=1e-9)
    version = artifact.load(shadow).version
    assert svc.metric("sentiment_shadow_model_info", {"version": version, "path": str(
        artifact.resolve_path(shadow))}) == 1  # fmt: skip
    for r in results.values():
        assert r["shadow"]["model_version"] == version
        if candidate == "live":
            assert (r["shadow"]["label"], r["shadow"]["score"]) == (r["label"], r["score"])
    assert svc.stop() == 0


def test_a_candidate_that_encodes_alike_scores_the_live_encoding_and_gets_the_same_scores(
    model_name, other_model, monkeypatch
):
    """The shadow takes the batch's live encoding only when its own would be the same: the same
    tokenizer config, vocabulary and length cap; else it encodes the texts itself."""
    live = artifact.load(model_name)
    texts = [r["text"] for r in posts(64)]
    encoded = Predictor(live).encode(texts)
    assert encodes_alike(live, live)
    assert not encodes_alike(live, dataclasses.replace(live, max_len=live.max_len // 2))

    same = Shadow(Predictor(artifact.load(model_name), runtime="auto"), live, 100, 60)
    assert same.reuses_encoding
    own = same.candidate.predict(texts)

    def encode_again(texts):
        raise AssertionError("the candidate encoded the texts again")

    monkeypatch.setattr(same.candidate, "encode", encode_again)
    assert same.score(texts, encoded) == own

    other = Shadow(Predictor(artifact.load(other_model), runtime="auto"), live, 100, 60)
    assert not other.reuses_encoding
    assert other.score(texts, encoded) == other.candidate.predict(texts)
