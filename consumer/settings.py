"""The service's settings: one frozen object, read once at start-up and passed down.

Every field is read from `SENTIMENT_<FIELD>` in the environment, a `.env` file, or a file named
`sentiment_<field>` in the secrets directory (`SENTIMENT_SECRETS_DIR`, default
`/run/secrets/sentiment`, where Kubernetes mounts a Secret): `sentiment_schema_registry_user_info`,
for one, holds the Schema Registry's `user:password`. Keyword arguments override all three,
which is how tests build one.

Any librdkafka property (SASL, SSL, tuning) passes through `SENTIMENT_KAFKA_CONFIG`, a JSON
object, and through secrets-directory files named `kafka.<property>` (for example
`kafka.sasl.password`), so a credential can live in its own Secret key. Both are SecretStr: they
never appear in logs, reprs or error messages.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from model import runtimes

ENV_PREFIX = "SENTIMENT_"
SECRETS_DIR_ENV = "SENTIMENT_SECRETS_DIR"
DEFAULT_SECRETS_DIR = "/run/secrets/sentiment"
KAFKA_SECRET_FILE_PREFIX = "kafka."

# Kafka's own rule for topic names.
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_HOST_PORT = re.compile(r"^[^\s:,]+:(\d{1,5})$")
# mock:// is confluent-kafka's in-process registry, which only tests in the same process can reach.
_REGISTRY_URL = re.compile(r"^(https?|mock)://[^\s,/@]+(/[^\s,@]*)?$")
# Formats in the Confluent wire format (magic byte, 4-byte schema id), with a Schema Registry.
REGISTRY_FORMATS = frozenset({"avro", "json_schema"})
# Never echoed in an error message.
_SECRET_FIELDS = frozenset({"kafka_config", "schema_registry_user_info", "schema_registry_url"})
# Properties the service sets itself because its delivery guarantee depends on them.
MANAGED_KAFKA_KEYS = frozenset(
    {
        "bootstrap.servers",
        "group.id",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "enable.idempotence",
        "isolation.level",
        "transactional.id",
        "on_commit",
        "stats_cb",
        "error_cb",
    }
)


class SettingsError(ValueError):
    """A setting has a value the service cannot run with; the message names the variable."""


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    bootstrap_servers: str = Field(description="host:port[,host:port...] of the Kafka cluster")
    input_topic: str = "posts"
    output_topic: str = "posts.sentiment"
    dlq_topic: str = "posts.dlq"
    group_id: str = "sentiment"
    # Static membership (Kafka's group.instance.id): a member that restarts under the same id
    # within the session timeout takes its partitions back without a rebalance of the whole
    # group. It must be unique in the group and stable across restarts: a StatefulSet pod's name.
    group_instance_id: str = ""
    model: str = Field("default", description="'default' (the shipped model) or a directory")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    # Measured with benchmarks/batch_sizes.py on the 2-core CPU machine (benchmarks/README.md):
    # 256 had the best throughput of 16-1024; a 20 ms wait kept p50/p99 latency at 100 posts/s
    # near 60/120 ms (50 ms: 90/150, 200 ms: 390/650) at the same throughput, because under load
    # consume() fills a batch at once whatever the wait.
    batch_max_size: int = Field(256, ge=1, le=10_000)
    batch_max_wait_ms: int = Field(20, ge=1, le=60_000)
    # The forward pass runs in chunks of this many posts sorted by length; 0 is the runtime's
    # own (its default_chunk in model.runtimes). ONNX Runtime's LSTM pays for every padded step
    # and a post costs about the same in a chunk of 8 as of 64, so its chunks are 16 (python -m
    # benchmarks.chunks: 2,328 posts/s in chunks of 16 against 1,942 in chunks of 64, one
    # thread). The table runtime computes no padded step and pays a Python step per chunk, so
    # its chunks are 256, and so are a GPU's.
    inference_batch_size: int = Field(0, ge=0, le=10_000)
    # How the forward pass runs: auto or a runtime of model.runtimes.REGISTRY. auto, on the
    # CPU: with two or more cores ONNX Runtime fp32, whose chunks run side by side; with one (a
    # pod's CPU limit counts, consumer.cores) the table runtime, fp32 with the input side folded
    # into lookup tables, which drained a backlog 1.2-1.5x faster on that core
    # (benchmarks.capacity). PyTorch on CUDA. onnx-int8 is cheaper still, but its scores depend
    # on the batch a post lands in.
    inference_runtime: str = runtimes.AUTO
    # Chunks of one micro-batch that run through the model at once on the CPU, each in its own
    # thread on one core; 0 is one per core the process may use. Whole chunks side by side use
    # two cores better than one chunk split over two threads (benchmarks.chunks: 3,739 against
    # 2,552 posts/s; end to end 1.17-1.38x, benchmarks/README.md). Ignored on CUDA and by the
    # table runtime, whose Python steps hold the GIL.
    inference_threads: int = Field(2, ge=0, le=1024)
    # Intra-op threads for PyTorch on CPU, per chunk; 0 keeps PyTorch's default (one per core).
    torch_threads: int = Field(1, ge=0, le=1024)
    # Intra-op threads for ONNX Runtime, per chunk; 0 is one per core the process may use.
    onnx_threads: int = Field(1, ge=0, le=1024)
    # Worker processes that segment the next batch while the poll loop runs the model on this
    # one; 0 segments in the poll loop's thread, taking turns with the model. With rjieba
    # (35 us a post) a worker measured level with none on the 2-core build machine (3,520 vs
    # 3,509 posts/s over two end-to-end runs, benchmarks/README.md) for 105 MiB more RSS, so the
    # default is none. On a GPU node, where segmentation and the loop are the whole CPU bill,
    # workers scale it (overlays/gpu runs 4; benchmarks/gpu_check.sh measures 1, 2 and 4).
    tokenizer_processes: int = Field(0, ge=0, le=64)
    text_field: str = Field("text", min_length=1)
    # avro and json_schema (in and out) read and write the Confluent wire format, the schema
    # named by the id after the magic byte living in the Schema Registry (consumer.schemas).
    input_format: Literal["json", "text", "avro", "json_schema"] = "json"
    output_format: Literal["json", "avro", "json_schema"] = "json"
    schema_registry_url: str = ""
    # Basic auth as `user:password`; a URL holding credentials is refused, so that the URL can
    # be logged.
    schema_registry_user_info: SecretStr = SecretStr("")
    # Posts are short (a Weibo post is at most 2,000 characters, about 6 KB of UTF-8).
    max_message_bytes: int = Field(65_536, ge=16, le=16 * 1024 * 1024)
    http_port: int = Field(9108, ge=1, le=65_535)
    processing_guarantee: Literal["at-least-once", "exactly-once"] = "at-least-once"
    # Exactly-once only. Must stay the same across restarts of one instance so that a restart
    # aborts the transaction its predecessor left open; empty means `<group_id>-<hostname>`.
    transactional_id: str = ""
    kafka_config: SecretStr = Field(
        SecretStr("{}"), description="JSON object of extra librdkafka properties"
    )
    statistics_interval_ms: int = Field(5000, ge=0, le=3_600_000)
    # /healthz fails once posts wait on this replica's partitions (lag above 0) and none has been
    # consumed or delivered for this long, so Kubernetes restarts a consumer that still polls
    # but gets nothing (seen: 4 minutes idle over 1,245 posts after a restart). 0 turns it off.
    # Keep it well above the time one batch can take to label and deliver.
    stuck_seconds: float = Field(300.0, ge=0, le=86_400)
    # Include the N tokens that drove each label in its result (`top_tokens`); 0 is off, since
    # explaining costs a backward pass per batch.
    explain_top_k: int = Field(0, ge=0, le=50)
    drift_window_size: int = Field(2000, ge=1, le=10_000_000)
    drift_window_seconds: float = Field(600.0, gt=0)
    # The labelling queue (off while the topic is empty): results worth a person's label, each
    # with `review_reason` low_confidence (below the confidence bound) or random (an unbiased
    # sample for fair evaluation), at most max_per_second of them.
    review_topic: str = ""
    review_max_confidence: float = Field(0.65, ge=0.0, le=1.0)
    review_sample_rate: float = Field(0.005, ge=0.0, le=1.0)
    review_max_per_second: float = Field(50.0, gt=0)
    # A candidate artifact scored beside the live model on the same batches; the results stay
    # the live model's. With shadow_in_results each result also carries the candidate's label.
    shadow_model: str = ""
    shadow_in_results: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    _kafka_secret_files: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        # The secrets directory is chosen at construction, not import, and only if it exists
        # (pydantic-settings warns about a missing one, which is the normal case off Kubernetes).
        if "_secrets_dir" not in values:
            secrets = Path(os.environ.get(SECRETS_DIR_ENV, DEFAULT_SECRETS_DIR))
            values["_secrets_dir"] = secrets if secrets.is_dir() else None
        secrets_dir = values["_secrets_dir"]
        super().__init__(**values)
        if secrets_dir is not None:
            self._kafka_secret_files = _read_kafka_secret_files(Path(secrets_dir))

    @field_validator("schema_registry_url")
    @classmethod
    def _check_registry_url(cls, v: str) -> str:
        for url in filter(None, (u.strip() for u in v.split(","))):
            if "@" in url:
                raise ValueError(
                    "must not hold credentials; put them in SENTIMENT_SCHEMA_REGISTRY_USER_INFO"
                )
            if not _REGISTRY_URL.match(url):
                raise ValueError("expected http(s)://host[:port][/path][,...]")
        return ",".join(u.strip() for u in v.split(",") if u.strip())

    @field_validator("schema_registry_user_info")
    @classmethod
    def _check_user_info(cls, v: SecretStr) -> SecretStr:
        value = v.get_secret_value()
        if value and (":" not in value or value.startswith(":")):
            raise ValueError("must be user:password")
        return v

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, v: str) -> str:
        servers = [s.strip() for s in v.split(",")]
        for s in servers:
            m = _HOST_PORT.match(s)
            if not m or not 0 < int(m.group(1)) < 65_536:
                raise ValueError(f"expected host:port[,host:port...]; {s!r} is not host:port")
        return ",".join(servers)

    @field_validator("review_topic")
    @classmethod
    def _check_review_topic(cls, v: str) -> str:
        return cls._check_topic(v) if v else v

    @field_validator("shadow_model")
    @classmethod
    def _check_shadow_model(cls, v: str) -> str:
        return cls._check_model(v) if v else v

    @field_validator("input_topic", "output_topic", "dlq_topic")
    @classmethod
    def _check_topic(cls, v: str) -> str:
        if not _TOPIC.match(v) or v in (".", ".."):
            raise ValueError("a topic name is 1-249 characters of letters, digits, '.', '_', '-'")
        return v

    @field_validator("group_id")
    @classmethod
    def _check_group(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("group_instance_id")
    @classmethod
    def _check_instance(cls, v: str) -> str:
        if v and (len(v) > 249 or not v.strip() or v != v.strip()):
            raise ValueError("must be 1-249 characters without leading or trailing spaces")
        return v

    @field_validator("model")
    @classmethod
    def _check_model(cls, v: str) -> str:
        if v != "default" and not Path(v).expanduser().is_dir():
            raise ValueError("must be 'default' or an existing model artifact directory")
        return v

    @field_validator("inference_runtime")
    @classmethod
    def _check_runtime(cls, v: str) -> str:
        if v not in runtimes.NAMES:
            *rest, last = (repr(name) for name in runtimes.NAMES)
            raise ValueError(f"must be {', '.join(rest)} or {last}")
        return v

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", v):
            raise ValueError("must be auto, cpu, cuda or cuda:N")
        return v

    @field_validator("kafka_config")
    @classmethod
    def _check_kafka_config(cls, v: SecretStr) -> SecretStr:
        # Errors here must not echo the value: it may hold a password.
        try:
            parsed = json.loads(v.get_secret_value() or "{}")
        except json.JSONDecodeError as e:
            raise ValueError(f"must be a JSON object of librdkafka properties ({e.msg})") from None
        if not isinstance(parsed, dict):
            raise ValueError("must be a JSON object of librdkafka properties")
        for key, value in parsed.items():
            if not isinstance(value, str | int | float | bool):
                raise ValueError(f"property {key!r} must be a string, number or boolean")
        managed = sorted(set(parsed) & MANAGED_KAFKA_KEYS)
        if managed:
            raise ValueError(
                f"{managed} are set by the service itself; use the SENTIMENT_ settings"
            )
        return v

    @model_validator(mode="after")
    def _check_topics_differ(self) -> Settings:
        if self.input_topic in (self.output_topic, self.dlq_topic, self.review_topic):
            raise ValueError(
                f"{env_name('input_topic')}={self.input_topic!r} must differ from "
                f"{env_name('output_topic')}, {env_name('dlq_topic')} and "
                f"{env_name('review_topic')}"
            )
        for name in ("input_format", "output_format"):
            fmt = getattr(self, name)
            if fmt in REGISTRY_FORMATS and not self.schema_registry_url:
                raise ValueError(
                    f"{env_name(name)}={fmt} needs {env_name('schema_registry_url')}: "
                    "its schemas live in a Schema Registry"
                )
        if self.shadow_in_results and not self.shadow_model:
            raise ValueError(
                f"{env_name('shadow_in_results')} needs {env_name('shadow_model')}: "
                "there is no candidate to report"
            )
        return self

    def uses_registry(self) -> bool:
        return bool({self.input_format, self.output_format} & REGISTRY_FORMATS)

    def librdkafka_config(self) -> dict[str, str | int | float | bool]:
        """Passthrough properties: the JSON setting, then secrets-directory files on top."""
        props: dict[str, str | int | float | bool] = json.loads(
            self.kafka_config.get_secret_value() or "{}"
        )
        props.update({k: v.get_secret_value() for k, v in self._kafka_secret_files.items()})
        return props

    def effective_transactional_id(self) -> str:
        import socket

        return self.transactional_id or f"{self.group_id}-{socket.gethostname()}"


def _read_kafka_secret_files(directory: Path) -> dict[str, SecretStr]:
    props = {}
    for path in sorted(directory.glob(KAFKA_SECRET_FILE_PREFIX + "*")):
        key = path.name[len(KAFKA_SECRET_FILE_PREFIX) :]
        if key in MANAGED_KAFKA_KEYS:
            raise SettingsError(
                f"{path}: {key!r} is set by the service itself; use the SENTIMENT_ settings"
            )
        if path.is_file():
            props[key] = SecretStr(path.read_text(encoding="utf-8").strip())
    return props


def describe_error(err: ValidationError) -> str:
    """One line per bad setting, naming its environment variable and what is allowed.

    The offending value is shown except for secrets, which are never echoed.
    """
    lines = []
    for e in err.errors():
        field = str(e["loc"][0]) if e["loc"] else ""
        msg = e["msg"].removeprefix("Value error, ")
        if not field:  # a check across fields; its message names the variables itself
            lines.append(msg)
            continue
        name = env_name(field)
        if e["type"] == "missing":
            msg = "is required" + (
                f" ({Settings.model_fields[field].description})"
                if field in Settings.model_fields and Settings.model_fields[field].description
                else ""
            )
            lines.append(f"{name} {msg}")
            continue
        secret = field in _SECRET_FIELDS
        shown = "" if secret else f"={e.get('input')!r}"
        lines.append(f"{name}{shown}: {msg}")
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning pydantic's report into a SettingsError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise SettingsError(describe_error(e)) from None
