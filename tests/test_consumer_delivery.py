"""Delivery guarantees under failure: SIGKILL, SIGTERM and exactly-once restarts, on a real broker.

Broker: the session's (Tansu unless KAFKA_BOOTSTRAP_SERVERS or Docker gives a Kafka), or a Tansu
of a test's own. Tansu returns aborted transactions' records to read_committed readers, so the
exactly-once test here allows one batch of duplicates; tests/test_consumer_exactly_once.py
checks exactly-once exactly on noida-db, and tests/test_consumer_broker_restart.py restarts a
broker that keeps its data.

Each test stops the service part-way through a stream, restarts it in the same group, and checks
the output topic once the group has committed the whole input. "Part-way" is a condition, not a
race: the input arrives in two parts, the stop lands once results of the first part are out, and
the second part is produced only after it, so the stop is mid-stream however fast the service is.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter

import pytest

from consumer.settings import Settings
from tests.conftest import (
    BROKER,
    alive,
    committed_total,
    encode,
    ids_of,
    posts,
    produce,
    read_all,
    read_until,
    service_on,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration

N = 2500


FIRST = N // 3  # produced before the stop; the rest only after it


def start_stream(kafka_bootstrap, topics, n=N):
    """Produce the first part of the stream; returns every id of it and the rest."""
    rows = posts(n)
    produce(kafka_bootstrap, topics.input, encode(rows[:FIRST]))
    return {r["id"] for r in rows}, rows[FIRST:]


def wait_until_partly_done(kafka_bootstrap, topics, group, n_results=150, read_committed=False):
    """Block until some results of the first part are out."""
    read_until(
        kafka_bootstrap,
        [topics.output],
        lambda ms: len(ms) >= n_results,
        timeout=120,
        read_committed=read_committed,
    )


def finish(kafka_bootstrap, svc, topics, group, n):
    wait_for(lambda: committed_total(kafka_bootstrap, group, topics.input) == n, 180,
             "the restarted service to commit the whole input")  # fmt: skip
    assert svc.stop() == 0


def test_sigkill_mid_stream_then_restart_every_post_has_a_result(
    kafka_bootstrap, make_topics, start_service, record_property
):
    topics, group = make_topics(3), unique("group")
    # A segmentation worker (not the default), so that the kill must take a child with it.
    svc = start_service(topics, group, tokenizer_processes=1)
    want, rest = start_stream(kafka_bootstrap, topics)
    wait_until_partly_done(kafka_bootstrap, topics, group)
    workers = svc.children()
    assert workers  # the tokenizer worker process, at least
    svc.kill()
    assert svc.proc.returncode == -signal.SIGKILL
    assert committed_total(kafka_bootstrap, group, topics.input) <= FIRST  # mid-stream
    # Off Kubernetes nothing else would reap them: the workers must die with the service.
    wait_for(lambda: not alive(workers), 30, "the killed service's workers to exit")
    produce(kafka_bootstrap, topics.input, encode(rest))

    finish(kafka_bootstrap, start_service(topics, group), topics, group, N)
    ids = ids_of(read_all(kafka_bootstrap, topics.output))
    assert set(ids) == want  # nothing lost
    duplicates = len(ids) - len(set(ids))
    # At-least-once: what was labelled after the last commit before the kill is labelled again.
    print(f"SIGKILL + restart: {len(ids)} results for {N} posts, {duplicates} duplicates")
    record_property("duplicates_after_sigkill", duplicates)
    assert max(Counter(ids).values()) <= 2


def test_sigterm_drains_commits_and_a_restart_adds_no_duplicates(
    kafka_bootstrap, make_topics, start_service
):
    topics, group = make_topics(3), unique("group")
    svc = start_service(topics, group, tokenizer_processes=1)  # a child to join
    want, rest = start_stream(kafka_bootstrap, topics)
    wait_until_partly_done(kafka_bootstrap, topics, group)
    workers = svc.children()
    t0 = time.monotonic()
    assert svc.stop(signal.SIGTERM, timeout=30) == 0  # inside Kubernetes' 30 s grace period
    print(f"SIGTERM to exit: {time.monotonic() - t0:.2f} s")
    assert "stopped cleanly" in svc.log()
    assert workers
    # Stopped, not orphaned: the pool's workers are joined before exit; multiprocessing's
    # resource tracker leaves once the service's end of its pipe closes, a moment later.
    wait_for(lambda: not alive(workers), 30, "the stopped service's child processes to exit")

    # Every result written is committed and nothing committed lacks its result.
    done = committed_total(kafka_bootstrap, group, topics.input)
    assert 0 < done <= FIRST
    assert len(read_all(kafka_bootstrap, topics.output)) == done
    produce(kafka_bootstrap, topics.input, encode(rest))

    finish(kafka_bootstrap, start_service(topics, group), topics, group, N)
    ids = ids_of(read_all(kafka_bootstrap, topics.output))
    assert sorted(ids) == sorted(want)  # each exactly once


def test_exactly_once_kill_and_restart_leaves_no_duplicates_among_committed_results(
    kafka_bootstrap, make_topics, start_service
):
    """On a Kafka broker read_committed hides an aborted transaction's records, and this test is
    exact: no result twice. The embedded Tansu does not hide them (checked: an aborted record is
    returned to read_committed readers), so when the kill lands in the few milliseconds in which
    a batch's transaction holds records, that one batch shows up twice there. On Tansu the test
    therefore allows at most one batch of duplicates, and still fails on any loss. The exact
    version, three kills and no duplicate, runs on noida-db: tests/test_consumer_exactly_once.py."""
    topics, group, txn = make_topics(3), unique("group"), unique("txn")
    eos = {"processing_guarantee": "exactly-once", "transactional_id": txn}
    svc = start_service(topics, group, **eos)
    want, rest = start_stream(kafka_bootstrap, topics)
    wait_until_partly_done(kafka_bootstrap, topics, group, read_committed=True)
    svc.kill()
    assert committed_total(kafka_bootstrap, group, topics.input) <= FIRST
    produce(kafka_bootstrap, topics.input, encode(rest))

    # The same transactional id fences the dead instance and aborts its open transaction.
    finish(kafka_bootstrap, start_service(topics, group, **eos), topics, group, N)
    committed = read_all(kafka_bootstrap, topics.output, read_committed=True)
    ids = ids_of(committed)
    assert set(ids) == set(want)  # nothing lost
    duplicates = len(ids) - len(set(ids))
    written = len(read_all(kafka_bootstrap, topics.output))
    print(f"exactly-once: {len(ids)} committed results, {duplicates} duplicates; "
          f"{written} records incl. aborted ones; broker {BROKER.get('kind')}")  # fmt: skip
    if BROKER.get("kind") == "tansu":
        assert duplicates <= Settings.model_fields["batch_max_size"].default
    else:
        assert duplicates == 0
    for m in committed:
        assert json.loads(m.value())["source"]["topic"] == topics.input


def test_sigterm_with_the_broker_gone_still_exits_inside_the_grace_period(tmp_path, model_name):
    """A broker of its own, stopped under the service's feet mid-stream: the service gives up
    waiting for acknowledgements after its drain time and exits 0 inside Kubernetes' 30 s."""
    from consumer.embedded_broker import EmbeddedBroker

    broker = EmbeddedBroker()
    broker.start()
    try:
        broker.create_topics({"posts": 2, "posts.sentiment": 2, "posts.dlq": 1})
        svc = service_on(broker, tmp_path, model_name)
        produce(broker.bootstrap, "posts", encode(posts(N)))
        read_until(broker.bootstrap, ["posts.sentiment"], lambda ms: len(ms) >= 50)
    finally:
        broker.stop()
    t0 = time.monotonic()
    assert svc.stop(signal.SIGTERM, timeout=30) == 0
    print(f"SIGTERM with the broker gone: exited after {time.monotonic() - t0:.1f} s")


def test_deliveries_that_time_out_rewind_lose_nothing_and_count_once_in_the_drift_window(
    tmp_path, model_name
):
    """A broker of its own behind a proxy that holds back the service's Produce requests while
    its input still flows: a batch is in flight for certain, its deliveries time out, the failed
    batch and the one behind it are rewound, the producer is renewed, and once the proxy lets
    the requests through every post has a result. The drift window, updated only for delivered
    batches, holds each post once: a rewound batch counted before delivery would be counted
    twice. Lag comes from the cached watermarks (statistics off) and reaches 0."""
    from consumer.embedded_broker import EmbeddedBroker, free_port
    from tests.kafka_proxy import PRODUCE, RequestHolder

    port = free_port()
    proxy = RequestHolder(port, PRODUCE)
    proxy.start()
    broker = EmbeddedBroker(port=port, advertised=proxy.address)
    broker.start()
    svc = None
    try:
        broker.create_topics({"posts": 3, "posts.sentiment": 3, "posts.dlq": 1})
        svc = service_on(broker, tmp_path, model_name, {"message.timeout.ms": 2000},
                         bootstrap=proxy.address, batch_max_size=32, statistics_interval_ms=0,
                         drift_window_size=100_000, drift_window_seconds=3600)  # fmt: skip
        rows = posts(N)
        produce(proxy.address, "posts", encode(rows[:FIRST]))
        read_until(proxy.address, ["posts.sentiment"], lambda ms: len(ms) >= 100)

        proxy.hold("sentiment-")  # the service's client id; the test's own producer passes
        try:
            produce(proxy.address, "posts", encode(rows[FIRST:]))
            wait_for(lambda: svc.metric("sentiment_delivery_errors_total") >= 1, 60,
                     "a delivery to time out")  # fmt: skip
        finally:
            proxy.release()
        assert proxy.held_requests > 0
        assert "rewinding to the batch's first offsets" in svc.log()

        wait_for(lambda: committed_total(proxy.address, "sentiment", "posts") == N, 180,
                 "the service to commit the whole input")  # fmt: skip
        ids = ids_of(read_all(proxy.address, "posts.sentiment"))
        assert set(ids) == {r["id"] for r in rows}  # nothing lost
        print(f"deliveries held: {len(ids)} results for {N} posts, {len(ids) - N} duplicates")
        assert svc.metric("sentiment_drift_window_posts") == N

        def lag() -> float:
            try:
                return sum(
                    svc.metric("sentiment_consumer_lag", {"topic": "posts", "partition": str(p)})
                    for p in range(3)
                )
            except KeyError:  # not every partition has a series yet
                return -1

        wait_for(lambda: lag() == 0, 30, "the watermark lag to reach 0")
        assert svc.stop() == 0
    finally:
        if svc is not None and svc.proc.poll() is None:
            svc.kill()
        broker.stop()
        proxy.stop()
