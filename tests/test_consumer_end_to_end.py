"""The service against a real broker: N posts in, N results out; bad input to the DLQ."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from consumer import records
from model.artifact import resolve_path
from tests.conftest import (
    Topics,
    committed_total,
    encode,
    ids_of,
    posts,
    produce,
    read_all,
    read_until,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration


def model_config(model_name: str) -> dict:
    return json.loads((resolve_path(model_name) / "config.json").read_text("utf-8"))


def test_n_posts_in_give_exactly_n_results_with_their_ids(
    kafka_bootstrap, make_topics, start_service, model_name
):
    topics = make_topics(3)
    group = unique("group")
    svc = start_service(topics, group)
    rows = posts(600)
    by_id = {r["id"]: r for r in rows}
    produce(kafka_bootstrap, topics.input, encode(rows), keys=[r["id"].encode() for r in rows])

    wait_for(lambda: committed_total(kafka_bootstrap, group, topics.input) == len(rows), 120,
             "every input offset committed")  # fmt: skip
    out = read_all(kafka_bootstrap, topics.output)
    assert sorted(ids_of(out)) == sorted(by_id)  # exactly N, each id once

    cfg = model_config(model_name)
    for m in out:
        r = json.loads(m.value())
        assert r["label"] in cfg["classifier"]["labels"]
        assert 0.0 <= r["score"] <= 1.0
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert r["score"] == pytest.approx(r["probabilities"]["positive"], abs=1e-6)
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
        assert r["model_version"] == cfg["version"]
        assert dict(m.headers())[records.H_MODEL_VERSION] == cfg["version"].encode()
        assert m.key() == r["id"].encode()  # same key as the input
        assert r["text"] == by_id[r["id"]]["text"]  # input fields carried through
        assert r["gold"] == by_id[r["id"]]["gold"]
        assert r["source"]["topic"] == topics.input
        assert r["input_timestamp_ms"] <= r["consumed_at_ms"] <= r["processed_at_ms"]
    assert read_all(kafka_bootstrap, topics.dlq) == []

    labels = Counter(json.loads(m.value())["label"] for m in out)
    for label in cfg["classifier"]["labels"]:
        value = svc.metric("sentiment_results_produced_total", {"label": label})
        assert value == labels[label]
    assert svc.metric("sentiment_messages_consumed_total") == len(rows)
    assert svc.metric("sentiment_assigned_partitions") == 3
    assert svc.metric("sentiment_commits_total") >= 1
    assert svc.metric("sentiment_batch_size_count") >= 1
    assert svc.get("/healthz")[0] == 200
    assert svc.stop() == 0


@pytest.mark.parametrize(
    ("tokenizer_processes", "runtime"), [(2, "auto"), (0, "auto"), (0, "table")]
)
def test_the_service_labels_like_the_model_in_process(
    kafka_bootstrap, make_topics, start_service, model_name, tokenizer_processes, runtime
):
    """Same texts, same artifact: the service's labels and scores are the predictor's (PyTorch),
    with segmentation in worker processes or in the poll loop's thread, and on the table
    runtime."""
    topics = make_topics(1)
    start_service(
        topics, unique("group"), tokenizer_processes=tokenizer_processes, batch_max_size=32,
        inference_runtime=runtime,
    )  # fmt: skip
    assert_labels_like_the_predictor(kafka_bootstrap, topics, posts(200), model_name)


def test_a_one_core_service_picks_the_table_runtime_and_labels_the_same(
    kafka_bootstrap, make_topics, start_service, model_name
):
    """auto chooses by the cores the process may use: pinned to one CPU (as a pod with a CPU
    limit of 1 is limited), the table runtime; the labels stay the predictor's."""
    topics = make_topics(1)
    svc = start_service(topics, unique("group"), prefix=["taskset", "-c", "0"])
    assert "(runtime table, cores 1)" in svc.log(), svc.log()
    assert_labels_like_the_predictor(kafka_bootstrap, topics, posts(60), model_name)
    assert svc.stop() == 0


def assert_labels_like_the_predictor(
    bootstrap: str, topics: Topics, rows: list[dict[str, Any]], model_name: str
) -> None:
    """Produce `rows`, read every result, and compare each with PyTorch's in-process label."""
    from model.artifact import load
    from model.predictor import Predictor

    produce(bootstrap, topics.input, encode(rows))
    want = {r["id"] for r in rows}
    out = read_until(bootstrap, [topics.output], lambda ms: set(ids_of(ms)) >= want)
    served = {json.loads(m.value())["id"]: json.loads(m.value()) for m in out}
    preds = Predictor(load(model_name)).predict([r["text"] for r in rows])
    for row, pred in zip(rows, preds, strict=True):
        assert served[row["id"]]["label"] == pred.label
        assert served[row["id"]]["score"] == pytest.approx(pred.score, abs=1e-4)


def malformed(max_bytes: int) -> list[tuple[str, bytes]]:
    """(expected reason, raw value) for every kind of bad input the service must survive."""
    return [
        ("invalid_json", b'{"id": "broken", "text": '),
        ("invalid_json", b"[1, 2, 3]"),
        # Deeper than any JSON parser here recurses: once a crash on every redelivery.
        ("invalid_json", b'{"id": "deep", "text": ' + b"[" * 1500 + b"]" * 1500 + b"}"),
        ("missing_text", b'{"id": "no-text"}'),
        ("missing_text", b'{"id": "number-text", "text": 42}'),
        ("not_utf8", b'{"id": "latin1", "text": "caf\xe9"}'),
        ("not_utf8", b'{"id": "surrogate", "text": "\\ud800"}'),
        ("too_large", json.dumps({"id": "big", "text": "好" * max_bytes}).encode()),
        # Bigger than the service's producer may send at all: it goes out cut, with a header.
        ("too_large", json.dumps({"id": "huge", "text": "x" * 1_200_000}).encode()),
        ("empty_text", b'{"id": "blank", "text": "   "}'),
        ("empty_text", b'{"id": "nothing", "text": ""}'),
    ]


def test_every_malformed_kind_lands_in_the_dlq_and_the_good_posts_around_it_are_labelled(
    kafka_bootstrap, make_topics, start_service
):
    topics = make_topics(1)  # one partition: the good posts sit on both sides of each bad one
    max_bytes = 4096
    svc = start_service(topics, unique("group"), max_message_bytes=max_bytes)
    bad = malformed(max_bytes)
    good = posts(6 * len(bad))  # a bad one after every sixth good one
    values, keys, expected = [], [], {}
    for i, row in enumerate(good):
        values.append(encode([row])[0])
        keys.append(row["id"].encode())
        if i % 6 == 3 and bad:
            reason, raw = bad.pop()
            key = unique("bad").encode()
            values.append(raw)
            keys.append(key)
            expected[key] = (reason, raw)
    assert not bad
    where = produce(kafka_bootstrap, topics.input, values, keys)
    offsets = {key: off for key, (_, off) in zip(keys, where, strict=True)}

    want = {r["id"] for r in good}
    results = read_until(kafka_bootstrap, [topics.output], lambda ms: set(ids_of(ms)) >= want)
    dead = read_until(kafka_bootstrap, [topics.dlq], lambda ms: len(ms) >= len(expected))
    assert sorted(ids_of(results)) == sorted(want)

    assert len(dead) == len(expected)
    for m in dead:
        reason, raw = expected[m.key()]
        h = {k: v.decode() for k, v in m.headers()}
        assert h[records.H_REASON] == reason, h
        if len(raw) > 1_000_000:  # librdkafka's default message.max.bytes
            assert h[records.H_TRUNCATED] == str(len(raw))
            assert m.value() == raw[:max_bytes]
        else:
            assert m.value() == raw  # the original bytes, untouched
        assert h[records.H_TOPIC] == topics.input
        assert h[records.H_PARTITION] == "0"
        assert h[records.H_OFFSET] == str(offsets[m.key()])
        assert h[records.H_ERROR]

    reasons = Counter(r for r, _ in expected.values())
    for reason, n in reasons.items():
        assert svc.metric("sentiment_dead_letters_total", {"reason": reason}) == n
    assert svc.proc.poll() is None  # bad input never stops the service


def test_raw_text_input_format(kafka_bootstrap, make_topics, start_service):
    topics = make_topics(1)
    start_service(topics, unique("group"), input_format="text")
    texts = [r["text"] for r in posts(30)]
    produce(kafka_bootstrap, topics.input, [t.encode() for t in texts] + [b"  ", b"\xff"])
    out = read_until(kafka_bootstrap, [topics.output], lambda ms: len(ms) >= len(texts))
    dead = read_until(kafka_bootstrap, [topics.dlq], lambda ms: len(ms) >= 2)
    got = {json.loads(m.value())["id"]: json.loads(m.value()) for m in out}
    # Without an id field the id is the input's coordinates.
    assert sorted(got) == sorted(f"{topics.input}/0/{i}" for i in range(len(texts)))
    assert [got[f"{topics.input}/0/{i}"]["text"] for i in range(len(texts))] == texts
    assert sorted(dict(m.headers())[records.H_REASON] for m in dead) == [b"empty_text", b"not_utf8"]


def test_a_full_producer_queue_slows_the_service_down_without_losing_anything(
    kafka_bootstrap, make_topics, start_service
):
    """Backpressure: with room for only a few records in librdkafka's queue, produce() raises
    BufferError all the time; the service must wait on delivery reports, not drop or crash."""
    topics, group = make_topics(2), unique("group")
    svc = start_service(topics, group, kafka_config={"queue.buffering.max.messages": 5})
    rows = posts(400)
    produce(kafka_bootstrap, topics.input, encode(rows))
    wait_for(lambda: committed_total(kafka_bootstrap, group, topics.input) == len(rows), 120,
             "every input offset committed")  # fmt: skip
    assert sorted(ids_of(read_all(kafka_bootstrap, topics.output))) == sorted(r["id"] for r in rows)
    assert svc.stop() == 0
