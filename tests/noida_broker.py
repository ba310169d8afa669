"""noida-db, the tests' second Kafka-protocol broker: one static binary (PyPI `noida-db`, MIT).

Tansu (consumer.embedded_broker) stays the default broker: it is fast and keeps everything in
memory. noida-db serves where Tansu cannot:

- `read_committed` readers do not see the records of aborted transactions (Tansu returns them),
  so an exactly-once test can ask for every result exactly once;
- it keeps its data on disk (one file under `--data-dir`, rewritten on a clean stop), so a test
  can stop it with SIGINT and start it again on the same directory and port.

Its quirks, each shown without the service by tests/test_noida_broker.py:

- a group's `session.timeout.ms` must be at least 6000 (NOIDA_GROUP), as on Kafka by default;
- a SIGKILLed group member is never evicted; with static membership (`group.instance.id`) the
  restarted member takes its partitions back at once;
- a read_committed fetch that starts after an aborted transaction's end is still told about that
  transaction, so both librdkafka and kafka-python drop the same producer's later, committed
  records from it. A reader from offset 0 gets each partition's whole log, abort markers
  included, in one response and sees every committed record: read the output from the start,
  once it is complete (conftest.read_all), never by tailing it;
- a SIGINT that lands while records are being written can drop records it has already
  acknowledged from the saved file; restart tests stop it when no write is in flight.

    with NoidaBroker(tmp_path / "noida") as broker:
        ... broker.bootstrap ...
        broker.stop()   # SIGINT: saves and exits
        broker.start()  # the same port and data directory
"""

from __future__ import annotations

import os
import signal
import subprocess
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import IO

from consumer.embedded_broker import BrokerError, answers, free_port

# noida-db refuses a group whose session timeout is under 6 s (INVALID_SESSION_TIMEOUT).
NOIDA_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 2000}


def noida_binary() -> str:
    """The binary inside the wheel. Run directly, not through the `noida-db` script: the script
    is a Python wrapper that would answer SIGINT by killing the binary before it saves."""
    try:
        binary = Path(str(files("noida_db").joinpath("noida-db")))
    except ModuleNotFoundError as e:
        raise BrokerError("noida-db is not installed: pip install -e '.[test]'") from e
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)  # what the wrapper does before its first run
    return str(binary)


class NoidaBroker:
    def __init__(self, data_dir: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port  # chosen on the first start, then kept across restarts
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise BrokerError("noida-db has not been started")
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.with_name(self.data_dir.name + ".log")

    def start(self, timeout: float = 30.0) -> str:
        """Start it (again) on its data directory; returns the bootstrap address once it
        answers metadata requests."""
        if self._proc is not None:
            raise BrokerError("noida-db is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fixed = self.port is not None
        for _ in range(1 if fixed else 3):  # a probed free port can be taken before we bind it
            self.port = self.port or free_port(self.host)
            self._log = self.log_path.open("ab")
            # Each start prints a harmless glibc "weak version" line to this log.
            self._proc = subprocess.Popen(
                [noida_binary(), "start", "--only", "kafka", "--host", self.host,
                 "--kafka-port", str(self.port), "--data-dir", str(self.data_dir)],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env={k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")},
                start_new_session=True,  # a Ctrl+C in the terminal reaches pytest, not it
            )  # fmt: skip
            if answers(self.bootstrap, self._proc, timeout):
                return self.bootstrap
            self._kill()
            if not fixed:
                self.port = None
        raise BrokerError(f"noida-db did not start; its log: {self.log_path}")

    def stop(self, timeout: float = 60.0) -> None:
        """SIGINT: it saves its data file and exits. Raises BrokerError if it does not exit
        cleanly in time (it is killed then, and what it had not saved is lost)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                raise BrokerError(f"noida-db did not stop within {timeout:.0f} s") from None
        self._proc = None
        self._close_log()
        if proc.returncode != 0:
            raise BrokerError(f"noida-db exited with {proc.returncode}; its log: {self.log_path}")

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> NoidaBroker:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.stop()
        else:
            self._kill()
