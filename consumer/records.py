"""Kafka messages in, result and dead-letter records out: everything but the model and the loop.

An input message either decodes to a `Post` or becomes a `DeadLetter` with one of the reasons of
`Reason`, the one list that records, batches, metrics and the README use. A dead letter keeps
the original key, value and headers, and adds headers saying why and where it came from, so it
can be inspected and replayed.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import orjson

if TYPE_CHECKING:  # the records need no torch; the segmentation workers import this module
    from model.predictor import Prediction

# Header names on dead letters; the values are UTF-8 strings.
H_REASON = "dlq.reason"
H_ERROR = "dlq.error"
H_TOPIC = "dlq.source.topic"
H_PARTITION = "dlq.source.partition"
H_OFFSET = "dlq.source.offset"
H_TIMESTAMP = "dlq.source.timestamp"
H_TRUNCATED = "dlq.truncated.from.bytes"
H_MODEL_VERSION = "model.version"
_MAX_ERROR_CHARS = 1000

log = logging.getLogger(__name__)


class Reason(StrEnum):
    """Why a message went to the dead-letter topic: the `dlq.reason` header and metric label."""

    INVALID_JSON = "invalid_json"  # not JSON, or not a JSON object
    MISSING_TEXT = "missing_text"  # the text field is absent or not a string
    NOT_UTF8 = "not_utf8"  # undecodable bytes, or escapes that decode to lone surrogates
    TOO_LARGE = "too_large"  # over SENTIMENT_MAX_MESSAGE_BYTES
    EMPTY_TEXT = "empty_text"  # no tokens left after normalisation
    INFERENCE_ERROR = "inference_error"  # the tokenizer or the model failed on this post
    # avro and json_schema input only:
    SCHEMA_UNKNOWN = "schema_unknown"  # the registry has no schema with the id it names
    # no magic byte and schema id, bytes that do not decode with (or validate against) their
    # schema, or a schema that is not a record
    SCHEMA_MISMATCH = "schema_mismatch"


class UndecodableError(Exception):
    """A typed reader's verdict on one message: the reason for its dead letter."""

    def __init__(self, reason: Reason, error: str) -> None:
        super().__init__(error)
        self.reason = reason


# A typed reader (consumer.schemas.TypedReader): value, topic and headers to the decoded object;
# raises UndecodableError for a message that is not a usable record.
Reader = Callable[[bytes, str, list[tuple[str, Any]]], Any]


class Message(Protocol):
    """The parts of confluent_kafka.Message used here (kafka-python's records fit too)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> str | bytes | None: ...
    def value(self) -> str | bytes | None: ...
    def headers(self) -> Any: ...
    def timestamp(self) -> tuple[int, int]: ...


@dataclass(frozen=True)
class Source:
    """Where a message came from, and when (milliseconds since the epoch)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    consumed_at_ms: int

    @classmethod
    def of(cls, msg: Message, consumed_at_ms: int) -> Source:
        ts_type, ts = msg.timestamp()
        return cls(
            topic=msg.topic() or "",
            partition=msg.partition() or 0,
            offset=msg.offset() or 0,
            timestamp_ms=ts if ts_type != 0 and ts >= 0 else None,  # 0: TIMESTAMP_NOT_AVAILABLE
            consumed_at_ms=consumed_at_ms,
        )

    @property
    def coordinates(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass
class Post:
    id: str
    text: str
    fields: dict[str, Any]  # the input object, carried through to the result
    key: bytes | None
    raw: bytes | None  # the original value and headers, for a dead letter found later
    headers: list[tuple[str, Any]]
    source: Source


@dataclass
class DeadLetter:
    reason: Reason
    error: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, Any]] = field(default_factory=list)
    source: Source | None = None

    def truncated(self, limit: int) -> DeadLetter:
        """This dead letter with its value cut to `limit` bytes and a header giving the size."""
        size = len(self.value or b"")
        headers = [*self.headers, (H_TRUNCATED, str(size).encode())]
        return replace(self, value=(self.value or b"")[:limit], headers=headers)

    def kafka_headers(self) -> list[tuple[str, Any]]:
        assert self.source is not None
        ours = [
            (H_REASON, self.reason),
            (H_ERROR, self.error[:_MAX_ERROR_CHARS]),
            (H_TOPIC, self.source.topic),
            (H_PARTITION, str(self.source.partition)),
            (H_OFFSET, str(self.source.offset)),
        ]
        if self.source.timestamp_ms is not None:
            ours.append((H_TIMESTAMP, str(self.source.timestamp_ms)))
        return [*self.headers, *((k, v.encode("utf-8", "backslashreplace")) for k, v in ours)]


def _fast_json(value: bytes) -> Any:
    """The parsed value, or None where the standard library must decide. orjson accepts only
    valid UTF-8 without lone surrogates, so what it parses needs none of the checks below; but it
    reads an integer beyond 64 bits as a float, which would round an id carried through to the
    result, so a value holding any float is parsed again exactly."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
        elif isinstance(o, float):
            return None
    return obj


def exact_json(value: bytes) -> Any:
    """JSON parsed as `decode` parses it: integers exact, and a UnicodeError for invalid UTF-8 or
    escapes that decode to lone surrogates (the json_schema reader's parser)."""
    obj = _fast_json(value)
    if obj is not None:
        return obj
    decoded = value.decode("utf-8")
    obj = json.loads(decoded)
    if "\\u" in decoded:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    return obj


def json_default(o: Any) -> Any:
    """What the standard library and orjson cannot write, from Avro input carried through: bytes
    as base64 (as Kafka Connect's JSON converter writes them), decimals as strings."""
    if isinstance(o, bytes):
        return base64.b64encode(o).decode("ascii")
    if isinstance(o, Decimal):
        return str(o)
    if isinstance(o, datetime.date | datetime.time):  # orjson writes these itself; json does not
        return o.isoformat()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _as_bytes(v: str | bytes | None) -> bytes | None:
    return v.encode("utf-8") if isinstance(v, str) else v


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def decode(
    msg: Message,
    *,
    input_format: str,
    text_field: str,
    max_bytes: int,
    consumed_at_ms: int,
    read: Reader | None = None,
) -> Post | DeadLetter:
    """Check size, encoding and shape; the emptiness check needs the tokenizer and comes later.

    `read` decodes the avro and json_schema formats (consumer.schemas); a record it returns is
    checked for its text field like a JSON object."""
    source = Source.of(msg, consumed_at_ms)
    key, raw = _as_bytes(msg.key()), _as_bytes(msg.value())
    value = raw or b""
    raw_headers = msg.headers() or []
    headers = list(raw_headers.items() if isinstance(raw_headers, dict) else raw_headers)

    def dead(reason: Reason, error: str) -> DeadLetter:
        log.warning("dead letter %s at %s: %s", reason, source.coordinates, error)
        return DeadLetter(reason, error, key, raw, headers, source)

    if len(value) > max_bytes:
        return dead(
            Reason.TOO_LARGE, f"{len(value)} bytes; SENTIMENT_MAX_MESSAGE_BYTES is {max_bytes}"
        )
    if read is not None:
        try:
            obj = read(value, source.topic, headers)
        except UndecodableError as e:
            return dead(e.reason, str(e))
        if not isinstance(obj, dict):
            return dead(Reason.SCHEMA_MISMATCH, f"expected a record, got {type(obj).__name__}")
    else:
        obj = None if input_format == "text" else _fast_json(value)
    if obj is None:
        # Raw text, or JSON that orjson refused or might round: the standard library decides,
        # and names the reason.
        try:
            decoded = value.decode("utf-8")
        except UnicodeDecodeError as e:
            return dead(Reason.NOT_UTF8, str(e))
        if input_format == "text":
            return Post(source.coordinates, decoded, {}, key, raw, headers, source)
        try:
            obj = json.loads(decoded)
        except json.JSONDecodeError as e:
            return dead(Reason.INVALID_JSON, str(e))
        except RecursionError:
            # Deep nesting would otherwise crash the loop on every redelivery: a poison pill.
            return dead(Reason.INVALID_JSON, "nested too deeply")
        if isinstance(obj, dict) and isinstance(obj.get(text_field), str) and "\\u" in decoded:
            # \u escapes can smuggle in lone surrogates: not Unicode text, and a result holding
            # one could not be written back out as UTF-8.
            try:
                json.dumps(obj, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError as e:
                return dead(Reason.NOT_UTF8, f"JSON escapes decode to invalid Unicode: {e}")
    if not isinstance(obj, dict):
        return dead(Reason.INVALID_JSON, f"expected a JSON object, got {type(obj).__name__}")
    text = obj.get(text_field)
    if not isinstance(text, str):
        what = "missing" if text is None else f"a {type(text).__name__}, not a string"
        return dead(Reason.MISSING_TEXT, f"field {text_field!r} is {what}")
    post_id = obj.get("id")
    post_id = source.coordinates if post_id is None else str(post_id)
    return Post(post_id, text, obj, key, raw, headers, source)


def _service_fields(
    post: Post, pred: Prediction, model_version: str, processed_at_ms: int
) -> dict[str, Any]:
    """The fields the service adds to every result, in JSON and in the typed formats alike."""
    return {
        "id": post.id,
        "label": pred.label,
        "score": round(pred.score, 6),
        "probabilities": {k: round(v, 6) for k, v in pred.probabilities.items()},
        "model_version": model_version,
        "source": {
            "topic": post.source.topic,
            "partition": post.source.partition,
            "offset": post.source.offset,
        },
        "input_timestamp_ms": post.source.timestamp_ms,
        "consumed_at_ms": post.source.consumed_at_ms,
        "processed_at_ms": processed_at_ms,
    }


def result_value(
    post: Post,
    pred: Prediction,
    model_version: str,
    processed_at_ms: int,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """The output record: the input's fields carried through, the service's own fields on top,
    then `extra` (the tokens that drove the label, a shadow candidate's label, a review
    reason)."""
    out = dict(post.fields)
    if not out:
        out["text"] = post.text  # raw-text input: keep the text so the result stands alone
    out.update(_service_fields(post, pred, model_version, processed_at_ms))
    if extra:
        out.update(extra)
    return _json_bytes(out)


def typed_result(
    post: Post,
    pred: Prediction,
    model_version: str,
    processed_at_ms: int,
    text_field: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The output record for avro and json_schema output, shaped by consumer.schemas' result
    schema: the service's fields typed, the text under `text`, and the input's other fields in
    `fields`, each as its JSON text, since a fixed schema cannot know them."""
    fields = {k: _json_bytes(v).decode("utf-8") for k, v in post.fields.items()
              if k not in ("id", text_field)}  # fmt: skip
    extra = extra or {}
    tokens = extra.get("top_tokens")
    own = _service_fields(post, pred, model_version, processed_at_ms)
    return {
        "id": own.pop("id"),
        "text": post.text,
        **own,
        "fields": fields,
        "top_tokens": None if tokens is None else [{"token": t, "weight": w} for t, w in tokens],
        "shadow": extra.get("shadow"),
        "review_reason": extra.get("review_reason"),
    }


def _json_bytes(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj, default=json_default)
    except TypeError:  # an integer beyond 64 bits, carried through from the input
        return json.dumps(obj, ensure_ascii=False, default=json_default).encode("utf-8")
