"""Typed topics: the avro and json_schema formats, read and written through a Schema Registry.

Both are the Confluent wire format (a zero magic byte, the schema's 4-byte id, then the Avro
binary or JSON body), which Kafka Connect's converters, ksqlDB and Flink SQL read without custom
code. Input is read with the schema the registry holds under the id in each message; output is
the result record of `RESULT_AVRO` (`RESULT_JSON_SCHEMA` is derived from it), registered at
start-up under `<topic>-value` (the standard TopicNameStrategy) for the output topic and the
review topic.

The result schema is fixed, so the input's own fields, whatever they are, travel in `fields`, a
map from field name to the field's JSON text (`{"author": "\\"li\\"", "likes": "3"}`), and the
text under `text` whatever SENTIMENT_TEXT_FIELD names it. Timestamps stay longs in milliseconds,
as in the JSON result, rather than Avro's timestamp-millis, which readers turn into datetimes.

Only consumer.__main__ imports this module, and only when a registry format is configured: the
serdes pull in fastavro, jsonschema and an HTTP client that the JSON path does without.

A registry that is down or refuses the credentials is no fault of the message: the reader raises
RegistryError, the service stops with exit code 1, and the batch's offsets, never stored, are read
again after the restart. Only "no such schema" (HTTP 404) makes a dead letter.
"""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.common._httpx_compat import httpx
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from consumer.records import Reason, UndecodableError, exact_json
from consumer.settings import Settings

RESULT_AVRO: dict[str, Any] = {
    "type": "record",
    "name": "SentimentResult",
    "namespace": "sentiment_stream",
    "doc": "The sentiment of one post (consumer/records.py typed_result).",
    "fields": [
        {"name": "id", "type": "string", "doc": "the input's id, else topic/partition/offset"},
        {"name": "text", "type": "string"},
        {"name": "label", "type": "string"},
        {"name": "score", "type": "double", "doc": "the label's probability"},
        {"name": "probabilities", "type": {"type": "map", "values": "double"}},
        {"name": "model_version", "type": "string"},
        {
            "name": "source",
            "type": {
                "type": "record",
                "name": "Source",
                "fields": [
                    {"name": "topic", "type": "string"},
                    {"name": "partition", "type": "int"},
                    {"name": "offset", "type": "long"},
                ],
            },
        },
        {"name": "input_timestamp_ms", "type": ["null", "long"], "default": None},
        {"name": "consumed_at_ms", "type": "long"},
        {"name": "processed_at_ms", "type": "long"},
        {
            "name": "fields",
            "type": {"type": "map", "values": "string"},
            "default": {},
            "doc": "the input's other fields, each as its JSON text",
        },
        {
            "name": "top_tokens",
            "type": [
                "null",
                {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "TokenWeight",
                        "fields": [
                            {"name": "token", "type": "string"},
                            {"name": "weight", "type": "double"},
                        ],
                    },
                },
            ],
            "default": None,
            "doc": "SENTIMENT_EXPLAIN_TOP_K",
        },
        {
            "name": "shadow",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "ShadowLabel",
                    "fields": [
                        {"name": "label", "type": "string"},
                        {"name": "score", "type": "double"},
                        {"name": "model_version", "type": "string"},
                    ],
                },
            ],
            "default": None,
            "doc": "SENTIMENT_SHADOW_IN_RESULTS",
        },
        {"name": "review_reason", "type": ["null", "string"], "default": None},
    ],
}


_SCALARS = {"string": "string", "double": "number", "int": "integer", "long": "integer"}


def json_schema_of(avro: Any) -> dict[str, Any]:
    """The JSON Schema that accepts what the Avro type `avro` describes, so that the result
    record is declared once, in Avro, and both formats carry the same fields."""
    if isinstance(avro, str):
        return {"type": _SCALARS[avro]}
    if isinstance(avro, list):  # only ["null", T] unions occur in the result record
        (other,) = [t for t in avro if t != "null"]
        # oneOf with null is how Confluent's JSON Schema converter spells an optional field.
        return {"oneOf": [{"type": "null"}, json_schema_of(other)]}
    if avro["type"] == "map":
        return {"type": "object", "additionalProperties": json_schema_of(avro["values"])}
    if avro["type"] == "array":
        return {"type": "array", "items": json_schema_of(avro["items"])}
    if avro["type"] == "record":
        return {
            "type": "object",
            "additionalProperties": False,
            "required": [f["name"] for f in avro["fields"] if "default" not in f],
            "properties": {f["name"]: json_schema_of(f["type"]) for f in avro["fields"]},
        }
    raise ValueError(f"no JSON Schema for the Avro type {avro!r}")


RESULT_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "SentimentResult",
    "description": RESULT_AVRO["doc"],
    **json_schema_of(RESULT_AVRO),
}


class RegistryError(Exception):
    """The Schema Registry failed (unreachable, credentials refused, a server error)."""


def _failed(what: str, e: Exception) -> RegistryError:
    if isinstance(e, SchemaRegistryError):
        return RegistryError(f"{what}: {e}")
    # a transport error of the client's own httpx (httpx2 on this Python)
    return RegistryError(f"{what}: {type(e).__name__}: {e}")


def connect(s: Settings) -> SchemaRegistryClient:
    """The client of SENTIMENT_SCHEMA_REGISTRY_URL; a mock:// URL gives confluent-kafka's
    in-process mock, whose schemas only that client instance holds."""
    conf = {"url": s.schema_registry_url}
    user_info = s.schema_registry_user_info.get_secret_value()
    if user_info:
        conf["basic.auth.user.info"] = user_info  # basic.auth.credentials.source is USER_INFO
    return SchemaRegistryClient.new_client(conf)


def result_schema(fmt: str) -> Schema:
    if fmt == "avro":
        return Schema(json.dumps(RESULT_AVRO), "AVRO")
    if fmt == "json_schema":
        return Schema(json.dumps(RESULT_JSON_SCHEMA), "JSON")
    raise ValueError(f"{fmt!r} is not a Schema Registry format")


class TypedReader:
    """Decodes a message value of SENTIMENT_INPUT_FORMAT avro or json_schema (records.Reader)."""

    def __init__(self, client: SchemaRegistryClient, fmt: str) -> None:
        if fmt == "avro":
            self._deserialize: Any = AvroDeserializer(client)
        elif fmt == "json_schema":
            # exact_json keeps integers beyond 64 bits exact, as the JSON format does, and turns
            # lone-surrogate escapes into a UnicodeError; the body is still validated.
            self._deserialize = JSONDeserializer(
                None, schema_registry_client=client, json_decode=exact_json
            )
        else:
            raise ValueError(f"{fmt!r} is not a Schema Registry format")

    def __call__(self, value: bytes, topic: str, headers: list[tuple[str, Any]]) -> Any:
        ctx = SerializationContext(topic, MessageField.VALUE, headers)
        try:
            return self._deserialize(value, ctx)
        except SchemaRegistryError as e:
            if e.http_status_code == 404:
                raise UndecodableError(Reason.SCHEMA_UNKNOWN, str(e)) from None
            raise _failed("Schema Registry", e) from e
        except httpx.HTTPError as e:
            raise _failed("Schema Registry", e) from e
        except UnicodeError as e:
            raise UndecodableError(Reason.NOT_UTF8, str(e)) from None
        except Exception as e:  # fastavro and jsonschema raise many kinds for bad bytes
            raise UndecodableError(Reason.SCHEMA_MISMATCH, f"{type(e).__name__}: {e}") from None


class TypedWriter:
    """Writes result records of SENTIMENT_OUTPUT_FORMAT avro or json_schema, one serializer per
    topic (a serializer remembers one schema id, and two subjects may have two)."""

    def __init__(self, client: SchemaRegistryClient, fmt: str, topics: list[str]) -> None:
        self.schema = result_schema(fmt)
        make = AvroSerializer if fmt == "avro" else JSONSerializer
        self._serializers = {
            t: make(schema_registry_client=client, schema_str=self.schema) for t in topics
        }
        self.schema_ids: dict[str, int] = {}
        for topic in topics:
            # Registered now rather than by the first record, so that an unreachable registry
            # or an incompatible earlier version stops start-up, not the first batch.
            try:
                self.schema_ids[topic] = client.register_schema(f"{topic}-value", self.schema)
            except (SchemaRegistryError, httpx.HTTPError) as e:
                raise _failed(f"registering {topic}-value", e) from e

    def __call__(self, topic: str, record: dict[str, Any]) -> bytes:
        ctx = SerializationContext(topic, MessageField.VALUE)
        try:
            value = self._serializers[topic](record, ctx)
        except (SchemaRegistryError, httpx.HTTPError) as e:
            raise _failed("Schema Registry", e) from e
        assert value is not None  # a record is never None
        return value
