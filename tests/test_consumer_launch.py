"""consumer.launch: how the demo, the benchmarks and the tests start the service and feed it."""

from __future__ import annotations

import time

import pytest

from consumer import launch
from tests.conftest import read_until


def test_start_reports_a_service_that_exits_before_it_is_ready_with_its_log(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(launch.NotReadyError, match="exited with 2") as e:
        launch.start({"batch_max_size": 5}, log=tmp_path / "service.log", cwd=tmp_path)
    assert "SENTIMENT_BOOTSTRAP_SERVERS is required" in str(e.value)  # the log, in the error
    assert time.monotonic() - t0 < 60  # the exit ends the wait, not the deadline


@pytest.mark.integration
def test_stream_paces_the_records_and_the_broker_has_them_all(kafka_bootstrap, make_topics):
    topic = make_topics(1).input
    records = [(f"k{i}", f"v{i}".encode()) for i in range(40)]
    t0 = time.monotonic()
    launch.stream(kafka_bootstrap, topic, records, rate=200)
    assert time.monotonic() - t0 >= 39 / 200  # the last record is due after 0.195 s
    got = read_until(kafka_bootstrap, [topic], lambda ms: len(ms) >= 40)
    assert [(m.key().decode(), m.value()) for m in got] == [(k, v) for k, v in records]
