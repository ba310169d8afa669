"""The service driven from outside, as the demo, the benchmarks and the tests drive it: `start`
runs `python -m consumer` as a child process and waits until it is ready; `stream` produces
posts at it, at a steady rate or as fast as the producer takes them.

Ready means /readyz answers 200: the model is loaded and the consumer has joined its group
(consumer.http_server). The wait ends on that answer, on the process exiting (with its log in
the error, when it writes one) or at a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from consumer.embedded_broker import free_port


class NotReadyError(RuntimeError):
    """The service exited before it was ready, or was not ready in time."""


@dataclass
class ServiceProcess:
    proc: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]  # the SENTIMENT_ variables it was started with, among the rest
    log_path: Path | None = None  # its stdout and stderr, when not this process's own

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, str]:
        """Status and body of a GET; raises OSError while nothing listens on the port."""
        try:
            with urllib.request.urlopen(self.url(path), timeout=5) as r:  # noqa: S310
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:  # 503 from /readyz is an answer, not a failure
            return e.code, e.read().decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                where = f"; its log: {self.log_path}" if self.log_path else ""
                raise NotReadyError(f"the service was not ready after {timeout:.0f} s{where}")
            try:
                code = self.proc.wait(0.1)  # paces the polling, and ends it when the service exits
            except subprocess.TimeoutExpired:
                continue
            raise NotReadyError(f"the service exited with {code}; its log:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the service (SIGTERM: it drains, commits and leaves) and return its exit code;
        raises subprocess.TimeoutExpired if it has not exited within `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start(
    settings: Mapping[str, object],
    *,
    log: Path | None = None,
    cwd: Path | None = None,
    prefix: Sequence[str] = (),
    pythonpath: Path | None = None,
    wait: bool = True,
) -> ServiceProcess:
    """`python -m consumer` with `settings` (Settings field names; a dict is written as JSON)
    and none of this process's own SENTIMENT_ variables; on a free HTTP port unless `http_port`
    is given. Its output goes to `log`, else to this process's stdout and stderr. `prefix` goes
    before the command (taskset, to give it fewer cores); `pythonpath` runs another checkout's
    code. With `wait`, returns once it is ready."""
    port = int(str(settings.get("http_port") or free_port()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMENT_")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    for name, value in {**settings, "http_port": port}.items():
        text = json.dumps(value) if isinstance(value, dict) else str(value)
        env[f"SENTIMENT_{name.upper()}"] = text
    cmd = [*prefix, sys.executable, "-m", "consumer"]
    if log is None:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env)
    else:
        with log.open("wb") as out:  # the child holds its own copy of the file
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    svc = ServiceProcess(proc, port, env, log)
    if wait:
        svc.wait_ready()
    return svc


def stream(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[str | bytes | None, bytes]],
    rate: float = 0.0,
    stop: threading.Event | None = None,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Produce (key, value) records at about `rate` a second (0: as fast as the producer takes
    them) until they run out or `stop` is set; returns once the broker has acknowledged all."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **(config or {})})
    t0 = time.monotonic()
    for i, (key, value) in enumerate(records):
        if stop is not None and stop.is_set():
            break
        while True:
            try:
                p.produce(topic, value, key)
                break
            except BufferError:  # the producer's queue is full: let acknowledgements drain it
                p.poll(0.1)
        p.poll(0)
        if rate:
            # poll(timeout) returns at the first delivery report, so it cannot pace by itself.
            time.sleep(max((i + 1) / rate - (time.monotonic() - t0), 0))
    left = p.flush(60)
    if left:
        raise RuntimeError(f"{left} records to {topic} were not acknowledged in 60 s")
