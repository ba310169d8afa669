"""What the benchmarks share: the sample posts, the service and the naive loop started the same
way, one reader of the results, one timer, and the memory and CPU of a process and its children.

Posts go to the broker through consumer.launch.stream and the service starts through
consumer.launch.start, the same as in the demo and the tests.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from consumer import launch

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "consumer" / "samples" / "reviews.jsonl"
PARTITIONS = 3
# The embedded broker makes a group join wait half the session timeout; keep it short.
FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
TICK = os.sysconf("SC_CLK_TCK")


def sample_texts() -> list[str]:
    return [json.loads(line)["text"] for line in SAMPLES.read_text("utf-8").splitlines()]


def post(texts: list[str], prefix: str, i: int) -> tuple[str, bytes]:
    """Post number i as (id, JSON value): id `prefix-i`, the texts cycled."""
    key = f"{prefix}-{i}"
    return key, json.dumps({"id": key, "text": texts[i % len(texts)]}, ensure_ascii=False).encode()


def post_values(texts: list[str], prefix: str, n: int) -> list[tuple[str, bytes]]:
    return [post(texts, prefix, i) for i in range(n)]


# ----------------------------------------------------------------------------- the consumers


def start_service(
    bootstrap: str,
    topics: Mapping[str, str],
    model: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    prefix: Sequence[str] = (),
) -> launch.ServiceProcess:
    """The service on `topics` ("in", "out", "dlq") in a group of its own, once it is ready.

    `env` holds SENTIMENT_ variables, as --variant gives them; `cwd` runs another commit's code
    from its worktree; `prefix` goes before the command (taskset, to give it fewer cores)."""
    settings = {
        "bootstrap_servers": bootstrap,
        "input_topic": topics["in"],
        "output_topic": topics["out"],
        "dlq_topic": topics["dlq"],
        "group_id": f"bench-service-{uuid.uuid4().hex[:8]}",
        "model": model,
        "log_level": "WARNING",
        "kafka_config": FAST_GROUP,
        **{k.removeprefix("SENTIMENT_").lower(): v for k, v in (env or {}).items()},
    }
    return launch.start(settings, cwd=cwd, pythonpath=cwd, prefix=prefix)


def start_naive(bootstrap: str, topics: Mapping[str, str], model: str) -> subprocess.Popen[str]:
    """The naive per-message loop (benchmarks.naive_consumer), once it has its partitions."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMENT_")}
    group = f"bench-naive-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "benchmarks.naive_consumer", bootstrap, topics["in"],
           topics["out"], group, model]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":  # it prints that once it is in its group
        raise RuntimeError("the naive consumer did not start")
    return proc


# ----------------------------------------------------------------------------- the results


class Result(NamedTuple):
    written_ms: int  # the result record's timestamp
    consumed_at_ms: int
    input_timestamp_ms: int


class ResultReader:
    """Reads a result topic from the beginning in a thread of its own: each id's first result,
    and how many records came (duplicates included). `wait` blocks until a condition on them
    holds, woken by each batch read."""

    def __init__(self, bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
        self._c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}"})
        self._c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        self.seen: dict[str, Result] = {}
        self.records = 0
        self._read = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msgs = [m for m in self._c.consume(5000, 0.5) if m.error() is None]
            if not msgs:
                continue
            with self._read:
                for m in msgs:
                    r = json.loads(m.value() or b"{}")
                    self.records += 1
                    if r["id"] not in self.seen:
                        ts = m.timestamp()[1]
                        self.seen[r["id"]] = Result(ts, r["consumed_at_ms"],
                                                    r["input_timestamp_ms"])  # fmt: skip
                self._read.notify_all()

    def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        """Whether `done()` held within `timeout` seconds."""
        with self._read:
            return self._read.wait_for(done, timeout)

    def until(self, ids: set[str], timeout: float) -> bool:
        """Whether every id in `ids` has a result within `timeout` seconds."""
        return self.wait(lambda: ids <= self.seen.keys(), timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._c.close()


# ----------------------------------------------------------------------------- time, memory, CPU


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """The median wall time of `repeats` calls of `fn`."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def family(pid: int) -> list[int]:
    """The process and its children: the service's tokenizer workers are part of its footprint."""
    pids = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # exited while we looked
    return pids


def status_mib(pids: list[int], field: str) -> float:
    """A /proc/PID/status memory field (VmHWM, VmRSS), in MiB, summed over the processes."""
    total = 0.0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process plus its children."""
    return status_mib(family(pid), "VmHWM") or float("nan")


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU seconds of the processes so far."""
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, ValueError, IndexError):
            continue
    return total
