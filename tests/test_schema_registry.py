"""Typed topics: avro and json_schema input and output through a Schema Registry.

No Schema Registry server installs here (Karapace is not on PyPI; Confluent's and Apicurio need
Java or Docker), so these tests use confluent-kafka's own in-process mock registry:
`SchemaRegistryClient.new_client({"url": "mock://..."})` returns a MockSchemaRegistryClient. In
confluent-kafka 2.16 its schemas belong to that client instance, not to the URL (a second
new_client with the same URL sees none of them), so each test builds one client and hands it to
both sides: to the producer of typed input and the independent reader of results, and to the
service's reader and writer (consumer.schemas), or to `consumer.__main__.build` in-process.
A mock:// URL cannot reach a service subprocess for the same reason; the end-to-end test runs
the service's own loop in this process against the real broker of tests/conftest.py.

Independent means confluent-kafka's own AvroSerializer/AvroDeserializer and JSONSerializer/
JSONDeserializer, not consumer code, read what the service writes and write what it reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from consumer.embedded_broker import free_port
from consumer.records import H_REASON, DeadLetter, Post, decode
from consumer.results import Results
from consumer.schemas import RegistryError, TypedReader, TypedWriter, result_schema
from consumer.settings import Settings
from model.predictor import Prediction
from tests.conftest import FAST_GROUP, produce, read_until, unique
from tests.test_consumer_records import Msg

POST_AVRO = json.dumps(
    {
        "type": "record",
        "name": "Post",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "content", "type": "string"},
            {"name": "likes", "type": "int"},
            {"name": "avatar", "type": ["null", "bytes"], "default": None},
        ],
    }
)
POST_JSON_SCHEMA = json.dumps(
    {
        "type": "object",
        "title": "Post",
        "properties": {
            "id": {"type": "string"},
            "content": {"type": "string"},
            "likes": {"type": "integer"},
        },
        "required": ["id", "content", "likes"],
    }
)
POST = {"id": "p1", "content": "这家店服务真好，下次还来", "likes": 3, "avatar": b"\x89PNG"}


@pytest.fixture
def registry() -> SchemaRegistryClient:
    return SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4().hex}"})


def ctx(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


def typed_input(registry: SchemaRegistryClient, fmt: str, post: dict[str, Any]) -> bytes:
    """What a producer using confluent-kafka's serializers writes to the input topic."""
    if fmt == "avro":
        value = AvroSerializer(registry, POST_AVRO)(post, ctx("in"))
    else:
        body = {k: v for k, v in post.items() if k != "avatar"}
        value = JSONSerializer(POST_JSON_SCHEMA, registry)(body, ctx("in"))
    assert value is not None
    return value


def reader_of(registry: SchemaRegistryClient, fmt: str) -> Any:
    """An independent deserializer of results, taking the writer's schema from the registry."""
    if fmt == "avro":
        return AvroDeserializer(registry)
    return JSONDeserializer(None, schema_registry_client=registry)


def dec(value: bytes, registry: SchemaRegistryClient, fmt: str) -> Post | DeadLetter:
    return decode(Msg(value), input_format=fmt, text_field="content", max_bytes=1000,
                  consumed_at_ms=5, read=TypedReader(registry, fmt))  # fmt: skip


# ----------------------------------------------------------------------------- input


@pytest.mark.parametrize("fmt", ["avro", "json_schema"])
def test_typed_input_decodes_to_a_post_with_its_fields(registry, fmt):
    post = dec(typed_input(registry, fmt, POST), registry, fmt)
    assert isinstance(post, Post)
    assert (post.id, post.text) == ("p1", POST["content"])
    assert post.fields["likes"] == 3
    if fmt == "avro":
        assert post.fields["avatar"] == b"\x89PNG"


def test_a_schema_id_the_registry_does_not_know_is_a_dead_letter_with_the_original_bytes(
    registry,
):
    value = typed_input(registry, "avro", POST)
    unknown = b"\x00" + (9999).to_bytes(4, "big") + value[5:]
    dead = dec(unknown, registry, "avro")
    assert isinstance(dead, DeadLetter)
    assert dead.reason == "schema_unknown"
    assert dead.value == unknown
    assert (H_REASON, b"schema_unknown") in dead.kafka_headers()


def _truncated(registry: SchemaRegistryClient) -> bytes:
    return typed_input(registry, "avro", POST)[:8]


def _json_against_its_schema(registry: SchemaRegistryClient) -> bytes:
    good = typed_input(registry, "json_schema", POST)
    return good[:5] + json.dumps({"id": "p1", "content": "好", "likes": "many"}).encode()


@pytest.mark.parametrize(
    ("fmt", "make"),
    [
        ("avro", _truncated),
        ("avro", lambda r: json.dumps(POST | {"avatar": None}).encode()),  # no magic byte
        ("json_schema", _json_against_its_schema),  # framed, but "likes" is not an integer
        ("json_schema", lambda r: typed_input(r, "json_schema", POST)[:5] + b"{not json"),
    ],
    ids=["avro-truncated", "avro-unframed", "json-schema-invalid", "json-schema-not-json"],
)
def test_bytes_that_do_not_match_their_schema_are_a_dead_letter(registry, fmt, make):
    value = make(registry)
    dead = dec(value, registry, fmt)
    assert isinstance(dead, DeadLetter), dead
    assert dead.reason == "schema_mismatch"
    assert dead.value == value


def test_a_record_without_the_text_field_is_missing_text(registry):
    value = typed_input(registry, "avro", POST)
    dead = decode(Msg(value), input_format="avro", text_field="body", max_bytes=1000,
                  consumed_at_ms=5, read=TypedReader(registry, "avro"))  # fmt: skip
    assert isinstance(dead, DeadLetter) and dead.reason == "missing_text"


def test_an_unreachable_registry_is_no_fault_of_the_message():
    """A dead letter would lose every post while the registry is down; the service stops
    instead (consumer.__main__ exits 1) and the batch is read again after the restart."""
    client = SchemaRegistryClient({"url": f"http://127.0.0.1:{free_port()}", "max.retries": 0})
    with pytest.raises(RegistryError):
        TypedReader(client, "avro")(b"\x00\x00\x00\x00\x01\x02hi", "in", [])


# ----------------------------------------------------------------------------- output


def settings(**kw: Any) -> Settings:
    return Settings(bootstrap_servers="k:9092", text_field="content",
                    schema_registry_url="mock://unused", _env_file=None, **kw)  # fmt: skip


PRED = Prediction("positive", 0.93, {"negative": 0.07, "positive": 0.93}, n_tokens=5, n_oov=0)


@pytest.mark.parametrize("fmt", ["avro", "json_schema"])
def test_a_typed_result_reads_back_as_the_same_record(registry, fmt):
    s = settings(output_format=fmt, output_topic="out", review_topic="review",
                 review_max_confidence=1.0)  # fmt: skip
    post = dec(typed_input(registry, "avro", POST), registry, "avro")
    assert isinstance(post, Post)
    writer = TypedWriter(registry, fmt, ["out", "review"])
    results = Results(s, ("negative", "positive"), "v1", None, writer)
    result, review = results.records([(post, PRED)], None)
    assert (result.topic, review.topic) == ("out", "review")
    assert result.value[0] == 0  # the wire format: magic byte, then the schema id
    assert int.from_bytes(result.value[1:5], "big") == writer.schema_ids["out"]

    got = reader_of(registry, fmt)(result.value, ctx("out"))
    assert got == {
        "id": "p1",
        "text": POST["content"],
        "label": "positive",
        "score": 0.93,
        "probabilities": {"negative": 0.07, "positive": 0.93},
        "model_version": "v1",
        "source": {"topic": "in", "partition": 2, "offset": 7},
        "input_timestamp_ms": 1_700_000_000_000,
        "consumed_at_ms": 5,
        "processed_at_ms": got["processed_at_ms"],
        # the input's other fields, as JSON text; bytes as base64
        "fields": {"likes": "3", "avatar": '"iVBORw=="'},
        "top_tokens": None,
        "shadow": None,
        "review_reason": None,
    }
    assert reader_of(registry, fmt)(review.value, ctx("review"))["review_reason"] == (
        "low_confidence"
    )


@pytest.mark.parametrize("fmt", ["avro", "json_schema"])
def test_the_result_schema_is_registered_under_the_output_topics_value_subject(registry, fmt):
    writer = TypedWriter(registry, fmt, ["posts.sentiment", "posts.review"])
    for topic in ("posts.sentiment", "posts.review"):
        latest = registry.get_latest_version(f"{topic}-value")
        assert latest.schema_id == writer.schema_ids[topic]
        assert latest.schema.schema_type == ("AVRO" if fmt == "avro" else "JSON")
        assert json.loads(latest.schema.schema_str) == json.loads(result_schema(fmt).schema_str)


@pytest.mark.parametrize("fmt", ["avro", "json_schema"])
def test_explanations_and_the_shadow_label_are_typed_too(registry, fmt):
    # The JSON Schema is derived from the Avro one, so both must carry the nested records.
    from consumer.batch import Explained

    post = dec(typed_input(registry, "avro", POST), registry, "avro")
    assert isinstance(post, Post)
    s = settings(output_format=fmt, output_topic="out", shadow_model="default",
                 shadow_in_results=True)  # fmt: skip
    writer = TypedWriter(registry, fmt, ["out"])
    results = Results(s, ("negative", "positive"), "v1", "v2", writer)
    pred = Explained(**vars(PRED), top_tokens=[("好", 0.5)])
    shadow = [Prediction("negative", 0.4, {"negative": 0.6, "positive": 0.4}, 5, 0)]
    (result,) = results.records([(post, pred)], shadow)
    got = reader_of(registry, fmt)(result.value, ctx("out"))
    assert got["top_tokens"] == [{"token": "好", "weight": 0.5}]
    assert got["shadow"] == {"label": "negative", "score": 0.4, "model_version": "v2"}


def test_the_json_schema_refuses_what_the_avro_schema_refuses(registry):
    import fastavro
    import jsonschema

    from consumer.schemas import RESULT_AVRO, RESULT_JSON_SCHEMA

    avro = fastavro.parse_schema(RESULT_AVRO)
    good = {"id": "p", "text": "好", "label": "positive", "score": 0.9,
            "probabilities": {"positive": 0.9}, "model_version": "v1",
            "source": {"topic": "t", "partition": 0, "offset": 1},
            "input_timestamp_ms": None, "consumed_at_ms": 1, "processed_at_ms": 2}  # fmt: skip
    bad = [
        {k: v for k, v in good.items() if k != "label"},
        {**good, "source": {"topic": "t", "partition": "0", "offset": 1}},
        {**good, "top_tokens": [{"token": "好"}]},
        {**good, "shadow": {"label": "x", "score": 0.1}},
    ]
    assert fastavro.validate(good, avro, raise_errors=False)
    jsonschema.validate(good, RESULT_JSON_SCHEMA)
    for record in bad:
        assert not fastavro.validate(record, avro, raise_errors=False), record
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(record, RESULT_JSON_SCHEMA)


def test_json_output_of_avro_input_carries_its_bytes_as_base64(registry):
    post = dec(typed_input(registry, "avro", POST), registry, "avro")
    assert isinstance(post, Post)
    results = Results(settings(), ("negative", "positive"), "v1", None)
    (result,) = results.records([(post, PRED)], None)
    out = json.loads(result.value)
    assert (out["avatar"], out["likes"], out["label"]) == ("iVBORw==", 3, "positive")


def test_the_json_path_imports_no_schema_registry_code():
    code = (
        "import sys, consumer.__main__, consumer.service, consumer.results;"
        "print([m for m in sys.modules if m.startswith(('confluent_kafka.schema_registry',"
        " 'fastavro', 'jsonschema', 'httpx'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- through a broker


@pytest.mark.integration
def test_avro_in_avro_out_through_the_broker(kafka_bootstrap, make_topics, model_name, registry):
    """The service's own loop (consumer.__main__.build), in this process so that it shares the
    mock registry: Avro posts in, Avro results out, read back by an independent deserializer;
    an unknown schema id and an unframed value land on the dead-letter topic."""
    from consumer.__main__ import build, load_models
    from consumer.http_server import Health

    topics = make_topics(partitions=1)
    s = Settings(
        bootstrap_servers=kafka_bootstrap, input_topic=topics.input, output_topic=topics.output,
        dlq_topic=topics.dlq, group_id=unique("group"), model=model_name, device="cpu",
        input_format="avro", output_format="avro", text_field="content",
        schema_registry_url="mock://in-process", statistics_interval_ms=0,
        kafka_config=json.dumps(FAST_GROUP), _env_file=None,
    )  # fmt: skip
    posts = [POST | {"id": f"p{i}", "likes": i} for i in range(5)]
    good = [typed_input(registry, "avro", p) for p in posts]
    unknown = b"\x00" + (4242).to_bytes(4, "big") + good[0][5:]
    produce(kafka_bootstrap, topics.input, [*good, unknown, b'{"content": "not avro"}'])

    predictor, _ = load_models(s)
    stop = threading.Event()
    service = build(s, predictor, None, Health(), stop, registry=registry)
    loop = threading.Thread(target=service.run, name="service")
    loop.start()
    try:
        out = read_until(kafka_bootstrap, [topics.output], lambda m: len(m) >= len(posts))
        dlq = read_until(kafka_bootstrap, [topics.dlq], lambda m: len(m) >= 2)
    finally:
        stop.set()
        loop.join(timeout=60)
    assert not loop.is_alive()

    read = AvroDeserializer(registry)
    results = {r["id"]: r for r in (read(m.value(), ctx(topics.output)) for m in out)}
    assert set(results) == {p["id"] for p in posts}
    for p in posts:
        r = results[p["id"]]
        assert r["text"] == p["content"] and r["fields"]["likes"] == str(p["likes"])
        assert r["label"] in ("negative", "positive")
        assert r["score"] == pytest.approx(r["probabilities"]["positive"])  # P(positive)
        assert r["model_version"] == predictor.loaded.version
    assert registry.get_latest_version(f"{topics.output}-value").schema.schema_type == "AVRO"
    reasons = {dict(m.headers() or [])[H_REASON]: m.value() for m in dlq}
    assert reasons == {b"schema_unknown": unknown, b"schema_mismatch": b'{"content": "not avro"}'}
