"""Settings: defaults, sources (env, .env, secrets dir, keywords), and start-up refusals.

Every bad value must stop `python -m consumer` with exit code 2 and one line on stderr that
names the variable; secrets must never appear in that line.
"""

from __future__ import annotations

import os
import socket

import pytest
from pydantic import ValidationError

from consumer.embedded_broker import free_port
from consumer.settings import Settings, SettingsError, load_settings
from tests.conftest import run_consumer_module

SECRET = "hunter2-do-not-print"


def env_for(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMENT_")}
    env["SENTIMENT_BOOTSTRAP_SERVERS"] = "127.0.0.1:9092"
    env["SENTIMENT_HTTP_PORT"] = str(free_port())  # 9108 may be taken by a running service
    env.update(values)
    return {k: v for k, v in env.items() if v is not None}


def last_line(err: str) -> str:
    """The refusal; log lines from before it (the HTTP server starting) may precede it."""
    return err.strip().splitlines()[-1]


BAD = [
    ("SENTIMENT_BOOTSTRAP_SERVERS", "localhost", "host:port"),
    ("SENTIMENT_BOOTSTRAP_SERVERS", "a:1,b:99999", "host:port"),
    ("SENTIMENT_INPUT_TOPIC", "no spaces allowed", "topic name"),
    ("SENTIMENT_OUTPUT_TOPIC", "posts", "must differ"),
    ("SENTIMENT_DLQ_TOPIC", "posts", "must differ"),
    ("SENTIMENT_GROUP_ID", "  ", "empty"),
    ("SENTIMENT_GROUP_INSTANCE_ID", " pod-0", "leading or trailing spaces"),
    ("SENTIMENT_MODEL", "/no/such/model", "model artifact directory"),
    ("SENTIMENT_DEVICE", "tpu", "auto, cpu, cuda"),
    ("SENTIMENT_BATCH_MAX_SIZE", "0", "greater than or equal to 1"),
    ("SENTIMENT_BATCH_MAX_SIZE", "lots", "valid integer"),
    ("SENTIMENT_BATCH_MAX_WAIT_MS", "0", "greater than or equal to 1"),
    ("SENTIMENT_INFERENCE_BATCH_SIZE", "-1", "greater than or equal to 0"),
    ("SENTIMENT_TORCH_THREADS", "-1", "greater than or equal to 0"),
    ("SENTIMENT_ONNX_THREADS", "-1", "greater than or equal to 0"),
    ("SENTIMENT_INFERENCE_THREADS", "-1", "greater than or equal to 0"),
    ("SENTIMENT_TOKENIZER_PROCESSES", "-1", "greater than or equal to 0"),
    ("SENTIMENT_TEXT_FIELD", "", "at least 1 character"),
    ("SENTIMENT_INPUT_FORMAT", "xml", "'json', 'text'"),
    ("SENTIMENT_INPUT_FORMAT", "avro", "SENTIMENT_SCHEMA_REGISTRY_URL"),
    ("SENTIMENT_OUTPUT_FORMAT", "json_schema", "SENTIMENT_SCHEMA_REGISTRY_URL"),
    ("SENTIMENT_OUTPUT_FORMAT", "protobuf", "'json', 'avro'"),
    ("SENTIMENT_SCHEMA_REGISTRY_URL", "registry:8081", "http(s)://"),
    ("SENTIMENT_SCHEMA_REGISTRY_URL", f"https://u:{SECRET}@sr:8081", "USER_INFO"),
    ("SENTIMENT_SCHEMA_REGISTRY_USER_INFO", SECRET, "user:password"),
    ("SENTIMENT_MAX_MESSAGE_BYTES", "0", "greater than or equal to 16"),
    ("SENTIMENT_HTTP_PORT", "70000", "less than or equal to 65535"),
    ("SENTIMENT_PROCESSING_GUARANTEE", "exactly-twice", "'at-least-once' or 'exactly-once'"),
    ("SENTIMENT_KAFKA_CONFIG", '{"sasl.password": "' + SECRET, "JSON object"),
    ("SENTIMENT_KAFKA_CONFIG", "[1, 2]", "JSON object"),
    ("SENTIMENT_KAFKA_CONFIG", '{"enable.auto.offset.store": true}', "set by the service"),
    ("SENTIMENT_STATISTICS_INTERVAL_MS", "-5", "greater than or equal to 0"),
    ("SENTIMENT_STUCK_SECONDS", "-1", "greater than or equal to 0"),
    ("SENTIMENT_STUCK_SECONDS", "5m", "valid number"),
    ("SENTIMENT_DRIFT_WINDOW_SIZE", "0", "greater than or equal to 1"),
    ("SENTIMENT_DRIFT_WINDOW_SECONDS", "0", "greater than 0"),
    ("SENTIMENT_LOG_LEVEL", "LOUD", "'DEBUG'"),
    ("SENTIMENT_INFERENCE_RUNTIME", "tensorrt", "'auto', 'torch'"),
]


@pytest.mark.parametrize(("var", "value", "allowed"), BAD, ids=[f"{v}={x[:20]}" for v, x, _ in BAD])
def test_each_bad_setting_stops_start_up_with_one_line_naming_it(tmp_path, var, value, allowed):
    code, err = run_consumer_module(env_for(**{var: value}), tmp_path)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert var in lines[0]
    assert allowed in lines[0]
    assert SECRET not in err


def test_missing_bootstrap_servers_stops_start_up(tmp_path):
    env = env_for()
    del env["SENTIMENT_BOOTSTRAP_SERVERS"]
    code, err = run_consumer_module(env, tmp_path)
    assert code == 2
    assert err.strip() == (
        "consumer: bad setting: SENTIMENT_BOOTSTRAP_SERVERS is required "
        "(host:port[,host:port...] of the Kafka cluster)"
    )


# These pass the settings check and fail when the service uses the value (slower: torch loads).


def test_a_directory_that_is_not_a_model_stops_start_up(tmp_path):
    code, err = run_consumer_module(env_for(SENTIMENT_MODEL=str(tmp_path)), tmp_path)
    assert code == 2
    assert last_line(err).startswith(f"consumer: SENTIMENT_MODEL={tmp_path}:"), err


def test_an_http_port_in_use_stops_start_up(tmp_path):
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        code, err = run_consumer_module(env_for(SENTIMENT_HTTP_PORT=str(port)), tmp_path)
    assert code == 2
    assert last_line(err).startswith(f"consumer: SENTIMENT_HTTP_PORT={port}:"), err


@pytest.mark.parametrize(
    "props",
    [{"no.such.property": "x"}, {"security.protocol": SECRET}],
    ids=["unknown", "bad-value"],
)
def test_librdkafka_rejecting_a_passthrough_property_stops_start_up(tmp_path, props, model_name):
    import json

    env = env_for(SENTIMENT_KAFKA_CONFIG=json.dumps(props), SENTIMENT_MODEL=model_name)
    code, err = run_consumer_module(env, tmp_path)
    assert code == 2
    assert last_line(err).startswith("consumer: SENTIMENT_KAFKA_CONFIG:"), err
    assert SECRET not in err


def test_a_schema_registry_that_does_not_answer_stops_start_up_naming_its_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    env = env_for(SENTIMENT_OUTPUT_FORMAT="avro", SENTIMENT_SCHEMA_REGISTRY_URL=url,
                  SENTIMENT_SCHEMA_REGISTRY_USER_INFO=f"svc:{SECRET}")  # fmt: skip
    code, err = run_consumer_module(env, tmp_path)
    assert code == 2
    assert last_line(err).startswith(f"consumer: SENTIMENT_SCHEMA_REGISTRY_URL={url}:"), err
    assert "posts.sentiment-value" in last_line(err)
    assert SECRET not in err


def test_cuda_asked_for_without_cuda_names_the_device_setting(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the refusal cannot happen here")
    code, err = run_consumer_module(env_for(SENTIMENT_DEVICE="cuda"), tmp_path)
    assert code == 2
    assert last_line(err).startswith("consumer: SENTIMENT_DEVICE=cuda:"), err


def test_a_runtime_the_device_cannot_run_names_the_runtime_setting(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; fp16 autocast would run here")
    env = env_for(SENTIMENT_INFERENCE_RUNTIME="torch-fp16", SENTIMENT_DEVICE="cpu")
    code, err = run_consumer_module(env, tmp_path)
    assert code == 2
    assert last_line(err).startswith("consumer: SENTIMENT_INFERENCE_RUNTIME=torch-fp16:"), err
    assert "CUDA" in last_line(err)


# In-process: how the settings object is built.


def test_defaults_are_the_documented_ones(monkeypatch):
    for k in list(os.environ):
        if k.startswith("SENTIMENT_"):
            monkeypatch.delenv(k)
    s = Settings(bootstrap_servers="k:9092", _env_file=None)
    assert (s.input_topic, s.output_topic, s.dlq_topic) == ("posts", "posts.sentiment", "posts.dlq")
    assert (s.group_id, s.model, s.device, s.text_field) == ("sentiment", "default", "auto", "text")
    assert (s.input_format, s.http_port, s.processing_guarantee) == ("json", 9108, "at-least-once")
    assert (s.drift_window_size, s.drift_window_seconds) == (2000, 600.0)
    assert s.stuck_seconds == 300.0
    assert (s.output_format, s.schema_registry_url) == ("json", "")
    assert not s.uses_registry()
    assert s.librdkafka_config() == {}


def test_settings_are_frozen():
    s = Settings(bootstrap_servers="k:9092")
    with pytest.raises(ValidationError):
        s.group_id = "other"  # type: ignore[misc]


def test_sources_env_then_dotenv_then_secrets_dir_keywords_win(tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith("SENTIMENT_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SENTIMENT_GROUP_ID=from-dotenv\nSENTIMENT_BATCH_MAX_SIZE=7\n")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "sentiment_bootstrap_servers").write_text("secret-host:9093")
    (secrets / "kafka.sasl.password").write_text(SECRET + "\n")
    monkeypatch.setenv("SENTIMENT_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("SENTIMENT_BATCH_MAX_SIZE", "9")
    monkeypatch.setenv("SENTIMENT_KAFKA_CONFIG", '{"security.protocol": "SASL_SSL"}')

    s = load_settings(input_topic="from-keyword")
    assert s.group_id == "from-dotenv"
    assert s.batch_max_size == 9  # the environment beats .env
    assert s.bootstrap_servers == "secret-host:9093"
    assert s.input_topic == "from-keyword"
    assert s.librdkafka_config() == {"security.protocol": "SASL_SSL", "sasl.password": SECRET}
    assert SECRET not in repr(s) and SECRET not in str(s)


def test_registry_credentials_come_from_the_secrets_dir_and_are_never_shown(tmp_path):
    (tmp_path / "sentiment_schema_registry_user_info").write_text(f"svc:{SECRET}\n")
    s = load_settings(
        bootstrap_servers="k:9092",
        output_format="avro",
        schema_registry_url="https://sr.example:8081",
        _secrets_dir=tmp_path,
    )
    assert s.schema_registry_user_info.get_secret_value() == f"svc:{SECRET}"
    assert SECRET not in repr(s) and SECRET not in str(s)


def test_a_secrets_file_may_not_override_a_managed_property(tmp_path):
    (tmp_path / "kafka.enable.auto.offset.store").write_text("true")
    with pytest.raises(SettingsError, match="set by the service"):
        Settings(bootstrap_servers="k:9092", _secrets_dir=tmp_path)


def test_a_bad_secret_json_is_reported_without_its_content():
    with pytest.raises(SettingsError) as e:
        load_settings(bootstrap_servers="k:9092", kafka_config='{"sasl.password": "' + SECRET)
    assert "SENTIMENT_KAFKA_CONFIG" in str(e.value)
    assert SECRET not in str(e.value)
