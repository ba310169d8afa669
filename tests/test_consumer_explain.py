"""SENTIMENT_EXPLAIN_TOP_K: results name the tokens that drove each label; off by default."""

from __future__ import annotations

import json

import pytest

from model.artifact import load
from model.predictor import Predictor
from tests.conftest import committed_total, encode, posts, produce, read_all, unique, wait_for

pytestmark = pytest.mark.integration


def test_explanations_ride_along_with_the_results_when_switched_on(
    kafka_bootstrap, make_topics, start_service, model_name
):
    topics = make_topics(1)
    group = unique("group")
    svc = start_service(topics, group, explain_top_k=3)
    rows = posts(40)
    by_id = {r["id"]: r for r in rows}
    produce(kafka_bootstrap, topics.input, encode(rows))
    wait_for(lambda: committed_total(kafka_bootstrap, group, topics.input) == len(rows), 120,
             "every input offset committed")  # fmt: skip
    out = [json.loads(m.value()) for m in read_all(kafka_bootstrap, topics.output)]
    assert sorted(r["id"] for r in out) == sorted(by_id)

    loaded = load(model_name, "cpu")
    pred = Predictor(loaded)
    for r in out:
        top = r["top_tokens"]
        # The tokens behind the ids: an unseen word may be spelled out in its characters.
        tokens = pred.encode([by_id[r["id"]]["text"]])[0].tokens
        assert 1 <= len(top) <= 3
        assert all(tok in tokens for tok, _ in top)
        weights = [abs(w) for _, w in top]
        assert weights == sorted(weights, reverse=True)
        # The same explanation the predictor gives in process, rounded as the service writes it.
        expected = pred.explain([by_id[r["id"]]["text"]], 3)[0]
        assert [t for t, _ in top] == [t for t, _ in expected]
    assert svc.stop() == 0


def test_results_carry_no_explanation_by_default(kafka_bootstrap, make_topics, start_service):
    topics = make_topics(1)
    group = unique("group")
    svc = start_service(topics, group)
    rows = posts(10)
    produce(kafka_bootstrap, topics.input, encode(rows))
    wait_for(lambda: committed_total(kafka_bootstrap, group, topics.input) == len(rows), 120,
             "every input offset committed")  # fmt: skip
    out = [json.loads(m.value()) for m in read_all(kafka_bootstrap, topics.output)]
    assert len(out) == 10
    assert all("top_tokens" not in r for r in out)
    assert svc.stop() == 0
