"""Unit tests without a broker: decoding input, building results, isolating a failing post.

Messages here are a tiny stand-in with the accessor methods of confluent_kafka.Message, since
the code under test only reads them; everything that talks to Kafka is tested against a real
broker in the other test_consumer_* files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import torch

from consumer import metrics, records
from consumer.batch import label
from consumer.records import DeadLetter, Post, decode, result_value
from consumer.segmentation import InProcessSegmenter
from model import artifact
from model.network import ClassifierConfig, SentimentClassifier
from model.predictor import Prediction, Predictor
from model.text import Tokenizer, TokenizerConfig
from model.vocab import Vocab


@dataclass
class Msg:
    _value: bytes | None
    _key: bytes | None = b"k"
    _offset: int = 7
    _headers: list = field(default_factory=list)

    def topic(self):
        return "in"

    def partition(self):
        return 2

    def offset(self):
        return self._offset

    def key(self):
        return self._key

    def value(self):
        return self._value

    def headers(self):
        return self._headers

    def timestamp(self):
        return (1, 1_700_000_000_000)


def dec(value, **kw):
    opts = {"input_format": "json", "text_field": "text", "max_bytes": 1000, "consumed_at_ms": 5}
    return decode(Msg(value), **{**opts, **kw})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{", "invalid_json"),
        (b'"just a string"', "invalid_json"),
        (None, "invalid_json"),
        (b"{}", "missing_text"),
        (b'{"text": null}', "missing_text"),
        (b'{"text": ["a"]}', "missing_text"),
        (b"\xc3\x28", "not_utf8"),
        (b'{"text": "\\udfff"}', "not_utf8"),
        (b'{"text": "' + b"a" * 2000 + b'"}', "too_large"),
        (b'{"text": "x", "nan": NaN', "invalid_json"),
        (b"\xef\xbb\xbf" + b'{"text": "a BOM"}', "invalid_json"),
    ],
)
def test_decode_routes_each_malformed_kind_to_its_reason(value, reason):
    d = dec(value)
    assert isinstance(d, DeadLetter)
    assert d.reason == reason
    assert d.value == value
    headers = dict(d.kafka_headers())
    assert headers[records.H_REASON] == reason.encode()
    assert headers[records.H_TOPIC] == b"in"
    assert headers[records.H_PARTITION] == b"2"
    assert headers[records.H_OFFSET] == b"7"
    assert headers[records.H_ERROR]


def test_decode_keeps_the_input_fields_and_falls_back_to_coordinates_for_the_id():
    p = dec(b'{"text": "\\u5f88\\u597d", "lang": "zh", "n": 3}')
    assert isinstance(p, Post)
    assert (p.id, p.text, p.fields["lang"], p.fields["n"]) == ("in/2/7", "很好", "zh", 3)
    assert dec(b'{"id": 12, "text": "x"}').id == "12"  # type: ignore[union-attr]
    assert dec(b'{"body": "x"}', text_field="body").text == "x"  # type: ignore[union-attr]
    raw = dec("就是文本".encode(), input_format="text")
    assert isinstance(raw, Post) and raw.text == "就是文本" and raw.fields == {}


def test_nesting_too_deep_for_any_parser_is_a_dead_letter_not_a_crash():
    value = b'{"text": "x", "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    d = dec(value, max_bytes=len(value))
    assert isinstance(d, DeadLetter)
    assert (d.reason, d.error) == ("invalid_json", "nested too deeply")


def test_integers_beyond_64_bits_and_nan_survive_the_round_trip_exactly():
    big = 123456789012345678901234567890
    p = dec(f'{{"id": {big}, "text": "好", "n": {big}, "m": -{big}, "f": NaN}}'.encode())
    assert isinstance(p, Post)
    assert (p.id, p.fields["n"], p.fields["m"]) == (str(big), big, -big)
    pred = Prediction("positive", 0.9, {"negative": 0.1, "positive": 0.9}, 1, 1)
    out = result_value(p, pred, "v1", 9)
    assert str(big).encode() in out and b"-" + str(big).encode() in out
    assert json.loads(out)["n"] == big


@pytest.mark.parametrize(
    "value",
    [
        '{"id": 7, "text": "這家店很好吃🔥", "x": [1.5, -2, null, true], "y": {"z": "a\\nb"}}',
        '{"text": "\\u5f88\\u597d\\ud83d\\ude00", "n": 9223372036854775807, "e": 1e-7}',
        '{"text": 42}',
        '{"text": "x", "text": "duplicate keys: the last wins"}',
        '[{"text": "not an object"}]',
        '{"text": "\\udfff"}',
    ],
)
def test_the_fast_parser_and_the_standard_one_decode_alike(value, monkeypatch):
    fast = dec(value.encode())
    monkeypatch.setattr(records, "_fast_json", lambda _: None)
    slow = dec(value.encode())
    assert type(fast) is type(slow)
    if isinstance(fast, Post):
        assert (fast.id, fast.text, fast.fields) == (slow.id, slow.text, slow.fields)  # type: ignore[union-attr]
    else:
        assert fast.reason == slow.reason  # type: ignore[union-attr]


def test_original_headers_travel_with_a_dead_letter():
    d = decode(
        Msg(b"{", _headers=[("trace", b"abc")]),
        input_format="json", text_field="text", max_bytes=100, consumed_at_ms=0,
    )  # fmt: skip
    assert isinstance(d, DeadLetter)
    assert d.kafka_headers()[0] == ("trace", b"abc")


@pytest.fixture(scope="module")
def tiny_predictor(tmp_path_factory):
    """A real (untrained, tiny) artifact saved and loaded the way the service loads one."""
    texts = ["这个手机很好用", "质量太差了，不推荐", "还行吧", "非常满意，物流也快"]
    tok = Tokenizer()
    vocab = Vocab.build([tok.tokenize(t) for t in texts], min_freq=1)
    torch.manual_seed(0)
    model = SentimentClassifier(ClassifierConfig(len(vocab), embed_dim=8, hidden_size=8))
    path = tmp_path_factory.mktemp("tiny-model")
    artifact.save(path, model, vocab, 32, TokenizerConfig())
    return Predictor(artifact.load(path), batch_size=4)


def post(text: str, i: int) -> Post:
    p = dec(json.dumps({"id": f"p{i}", "text": text}).encode())
    assert isinstance(p, Post)
    return p


def label_batch(predictor, posts):
    """The service's step: segment in this thread, then label."""
    rows, _ = InProcessSegmenter(predictor.loaded).submit([p.text for p in posts]).result()
    labelled, _, dead = label(predictor, posts, rows)
    return labelled, dead


def test_label_batch_labels_posts_and_dead_letters_empty_ones(tiny_predictor):
    posts = [post("很好用", 0), post("  ", 1), post("太差了", 2)]
    labelled, dead = label_batch(tiny_predictor, posts)
    assert [p.id for p, _ in labelled] == ["p0", "p2"]
    assert [(d.reason, d.source.offset) for d in dead] == [("empty_text", 7)]  # type: ignore[union-attr]
    value = json.loads(result_value(labelled[0][0], labelled[0][1], "v1", 9))
    assert value["id"] == "p0" and value["model_version"] == "v1"
    assert value["label"] in tiny_predictor.labels
    assert value["source"] == {"topic": "in", "partition": 2, "offset": 7}


def test_a_post_that_breaks_inference_costs_only_itself(tiny_predictor, monkeypatch):
    """A fake forward pass that fails on one poisoned input: the CPU stand-in for a model bug."""
    poison = tiny_predictor.loaded.vocab.encode(
        tiny_predictor.loaded.tokenizer.tokenize("还行吧"), 32
    )
    real = tiny_predictor.model.forward

    def forward(ids, lengths, emb=None):
        for row, n in zip(ids.tolist(), lengths.tolist(), strict=True):
            if row[:n] == poison:
                raise RuntimeError("poisoned input")
        return real(ids, lengths, emb)

    monkeypatch.setattr(tiny_predictor.model, "forward", forward)
    count = "sentiment_inference_seconds_count"
    before = metrics.REGISTRY.get_sample_value(count) or 0.0
    labelled, dead = label_batch(
        tiny_predictor, [post("很好用", 0), post("还行吧", 1), post("太差了", 2)]
    )
    assert [p.id for p, _ in labelled] == ["p0", "p2"]
    assert [d.reason for d in dead] == ["inference_error"]
    assert "poisoned input" in dead[0].error
    assert metrics.REGISTRY.get_sample_value(count) == before + 1  # timed once per batch


def test_explanations_ride_on_the_prediction_into_the_result_and_leave_the_post_alone(
    tiny_predictor,
):
    from consumer.batch import Explained
    from consumer.results import Results
    from consumer.settings import Settings

    posts = [post("很好用", 0), post("太差了", 1)]
    rows, _ = InProcessSegmenter(tiny_predictor.loaded).submit([p.text for p in posts]).result()
    labelled, encoded, _ = label(tiny_predictor, posts, rows, explain_top_k=2)
    tops = tiny_predictor.explain_encoded(encoded, 2)
    for (p, pred), top in zip(labelled, tops, strict=True):
        assert isinstance(pred, Explained) and pred.top_tokens == top
        assert not hasattr(p, "top_tokens")  # the input post is left as it came
    s = Settings(bootstrap_servers="k:9092", group_id="g")
    out = Results(s, tiny_predictor.labels, "v1", None).records(labelled, None)
    for rec, top in zip(out, tops, strict=True):
        assert json.loads(rec.value)["top_tokens"] == [[t, round(w, 4)] for t, w in top]


def test_kafka_configs_let_passthrough_tune_but_not_weaken_the_guarantee():
    from consumer.kafka_config import kafka_configs
    from consumer.settings import Settings

    s = Settings(
        bootstrap_servers="k:9092",
        batch_max_wait_ms=30,
        kafka_config='{"auto.offset.reset": "latest", "linger.ms": 50, "sasl.username": "u"}',
    )
    consumer, producer = kafka_configs(s)
    assert consumer["auto.offset.reset"] == "latest" and producer["linger.ms"] == 50
    assert consumer["sasl.username"] == producer["sasl.username"] == "u"
    assert consumer["enable.auto.offset.store"] is False
    assert consumer["enable.auto.commit"] is False
    assert consumer["fetch.wait.max.ms"] == 30  # a held fetch never outlasts the batch wait
    assert producer["enable.idempotence"] is True
    assert "transactional.id" not in producer

    eos = Settings(bootstrap_servers="k:9092", processing_guarantee="exactly-once",
                   transactional_id="sentiment-0")  # fmt: skip
    consumer, producer = kafka_configs(eos)
    assert producer["transactional.id"] == "sentiment-0"
    assert consumer["isolation.level"] == "read_committed"


def test_the_transactional_producer_does_not_rebootstrap_unless_told_to():
    """librdkafka #5511: after a re-bootstrap, send_offsets_to_transaction can wait for ever."""
    from consumer.kafka_config import kafka_configs
    from consumer.settings import Settings

    eos = {"bootstrap_servers": "k:9092", "processing_guarantee": "exactly-once"}
    consumer, producer = kafka_configs(Settings(**eos))
    assert producer["metadata.recovery.strategy"] == "none"
    assert "metadata.recovery.strategy" not in consumer
    _, producer = kafka_configs(Settings(bootstrap_servers="k:9092"))
    assert "metadata.recovery.strategy" not in producer  # at-least-once keeps the default
    told = Settings(**eos, kafka_config='{"metadata.recovery.strategy": "rebootstrap"}')
    assert kafka_configs(told)[1]["metadata.recovery.strategy"] == "rebootstrap"


def test_a_group_instance_id_makes_the_consumer_a_static_member():
    from consumer.kafka_config import kafka_configs
    from consumer.settings import Settings

    consumer, _ = kafka_configs(Settings(bootstrap_servers="k:9092"))
    assert "group.instance.id" not in consumer  # dynamic membership unless asked for
    static = Settings(bootstrap_servers="k:9092", group_instance_id="sentiment-2")
    consumer, producer = kafka_configs(static)
    assert consumer["group.instance.id"] == "sentiment-2"
    assert "group.instance.id" not in producer
