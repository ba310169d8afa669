"""The loop closed on tiny data, through a real broker: capture posts, pretrain a tiny language
model on them, fine-tune on a labelled capture, and serve the fine-tuned artifact."""

from __future__ import annotations

import json

import pytest

from tests.conftest import (
    committed_total,
    encode,
    ids_of,
    produce,
    read_all,
    unique,
    wait_for,
)
from tests.test_finetune import FAST, FILL, OTHER_FILL, rows
from training.capture import capture
from training.capture import main as capture_main
from training.finetune import main as finetune_main
from training.pretrain import main as pretrain_main

pytestmark = pytest.mark.integration


def test_capture_stops_at_max_and_at_the_end_then_resumes_where_it_stopped(
    kafka_bootstrap, make_topics, tmp_path
):
    topics = make_topics(3)
    values = [json.dumps({"id": f"p{i}", "text": t}, ensure_ascii=False).encode()
              for i, (t, _) in enumerate(rows(120, 1, FILL))]  # fmt: skip
    produce(kafka_bootstrap, topics.input, [*values, b"plain text, not JSON"])
    out = tmp_path / "posts.jsonl"
    group = unique("capture")
    assert capture(kafka_bootstrap, topics.input, out, 50, group, progress=False) == 50
    assert capture(kafka_bootstrap, topics.input, out, 0, group, progress=False) == 71
    assert capture(kafka_bootstrap, topics.input, out, 0, group, progress=False) == 0  # at end
    lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    ids = [r.get("id") for r in lines if "id" in r]
    assert sorted(ids) == sorted(f"p{i}" for i in range(120))  # each once, across three runs
    assert {"text": "plain text, not JSON"} in lines


def test_capture_pretrain_finetune_then_serve(
    kafka_bootstrap, make_topics, start_service, tmp_path
):
    # 1. Capture unlabelled posts from a topic.
    unlabelled = make_topics(3)
    posts = [{"id": f"u{i}", "text": t} for i, (t, _) in
             enumerate(rows(600, 1, FILL) + rows(300, 2, OTHER_FILL))]  # fmt: skip
    produce(kafka_bootstrap, unlabelled.input, encode(posts))
    corpus = tmp_path / "corpus.jsonl"
    assert capture_main(["--bootstrap-servers", kafka_bootstrap, "--topic", unlabelled.input,
                         "--out", str(corpus), "--no-progress"]) == 0  # fmt: skip
    # 2. Pretrain a tiny language model on the captured file as it is.
    lm = tmp_path / "lm"
    assert pretrain_main(["--data", str(corpus), "--out", str(lm), "--embed-dim", "16",
                          "--hidden-size", "16", "--epochs", "1", "--min-freq", "1", "--lr",
                          "0.01", *FAST]) == 0  # fmt: skip
    # 3. A labelled capture: review records as people return them, with a `label` field.
    review = make_topics(1)
    labelled = [{"id": f"r{i}", "text": t, "label": lb, "review_reason": "random"}
                for i, (t, lb) in enumerate(rows(240, 5, OTHER_FILL))]  # fmt: skip
    produce(kafka_bootstrap, review.input, encode(labelled))
    labels = tmp_path / "labelled.jsonl"
    assert capture_main(["--bootstrap-servers", kafka_bootstrap, "--topic", review.input,
                         "--out", str(labels), "--no-progress"]) == 0  # fmt: skip
    tuned = tmp_path / "tuned"
    assert finetune_main(["--base", str(lm), "--data", str(labels), "--out", str(tuned),
                          "--epochs", "4", "--lr", "0.02", "--no-report", *FAST]) == 0  # fmt: skip
    metrics = json.loads((tuned / "metrics.json").read_text("utf-8"))
    assert metrics["test"]["n"] > 0
    # 4. The fine-tuned artifact serves.
    topics, group = make_topics(3), unique("group")
    svc = start_service(topics, group, model=str(tuned))
    fresh = [{"id": f"s{i}", "text": t} for i, (t, _) in enumerate(rows(50, 9, OTHER_FILL))]
    produce(kafka_bootstrap, topics.input, encode(fresh))
    wait_for(lambda: committed_total(kafka_bootstrap, group, topics.input) == len(fresh), 120,
             "the fine-tuned model to label every post")  # fmt: skip
    results = read_all(kafka_bootstrap, topics.output)
    assert sorted(ids_of(results)) == sorted(p["id"] for p in fresh)
    versions = {json.loads(m.value())["model_version"] for m in results}
    assert versions == {json.loads((tuned / "config.json").read_text("utf-8"))["version"]}
    assert svc.stop() == 0
