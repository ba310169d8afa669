"""A consumer that keeps polling while no post reaches it fails /healthz, on a real broker.

The service runs on a broker of its own behind a proxy (tests/kafka_proxy.py) that holds back
its Fetch requests: the poll loop keeps turning, the group coordinator's connection keeps its
membership and commits, and no post arrives, as in the incident where the service sat idle over
1,245 waiting posts while both probes answered 200. The service must see the lag to know posts
wait, and it learns a partition's end only from a fetch answer. So its fetches are capped at
16 KiB, and one fetch goes through after the new posts are produced: it brings every
partition's end offset and only some of the posts (a broker fills a fetch answer up to the cap
and reports each partition's high watermark), then every later fetch is held.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import (
    committed_total,
    encode,
    ids_of,
    posts,
    produce,
    read_all,
    read_until,
    service_on,
    wait_for,
)

pytestmark = pytest.mark.integration

FIRST, REST = 100, 400
STUCK_SECONDS = 3
REASON = re.compile(
    r"(\d+) posts waiting on the assigned partitions, none consumed or delivered for (\d+) s"
)


def test_held_fetches_with_posts_waiting_fail_healthz_until_posts_move_again(tmp_path, model_name):
    from consumer.embedded_broker import EmbeddedBroker, free_port
    from tests.kafka_proxy import FETCH, RequestHolder

    port = free_port()
    proxy = RequestHolder(port, FETCH)
    proxy.start()
    broker = EmbeddedBroker(port=port, advertised=proxy.address)
    broker.start()
    svc = None
    try:
        broker.create_topics({"posts": 3, "posts.sentiment": 3, "posts.dlq": 1})
        # librdkafka wants fetch.max.bytes >= message.max.bytes; posts are about 300 bytes.
        capped = {"fetch.max.bytes": 16384, "message.max.bytes": 16384}
        svc = service_on(broker, tmp_path, model_name, capped, bootstrap=proxy.address,
                         stuck_seconds=STUCK_SECONDS, statistics_interval_ms=500)  # fmt: skip
        rows = posts(FIRST + REST)
        produce(proxy.address, "posts", encode(rows[:FIRST]))
        read_until(proxy.address, ["posts.sentiment"], lambda ms: len(ms) >= FIRST)
        assert svc.get("/healthz") == (200, "ok\n")

        proxy.hold("sentiment-")  # the service's client id; the test's own clients pass
        wait_for(lambda: proxy.waiting >= 1, 30, "the service's next fetch to be held")
        for i in range(FIRST, FIRST + REST, 50):  # several record batches per partition
            produce(proxy.address, "posts", encode(rows[i : i + 50]))
        proxy.pass_one()  # sent before the posts existed, it reaches the broker after them
        wait_for(lambda: proxy.held_requests >= 2, 30, "the fetch after it to be held")

        answers: list[tuple[int, str]] = []

        def healthz_fails() -> bool:
            answers.append(svc.get("/healthz"))
            return answers[-1][0] == 503

        wait_for(healthz_fails, 120, "/healthz to report the consumer stuck")
        found = REASON.fullmatch(answers[-1][1].strip())
        assert found, answers[-1]
        waiting, seconds = int(found[1]), int(found[2])
        assert 0 < waiting < REST  # the fetch let through brought some posts, not all
        assert seconds >= STUCK_SECONDS
        assert svc.metric("sentiment_seconds_since_progress") >= STUCK_SECONDS
        assert svc.get("/readyz")[0] == 503
        assert svc.proc.poll() is None

        proxy.release()
        wait_for(lambda: svc.get("/healthz") == (200, "ok\n"), 60, "/healthz to recover")
        wait_for(lambda: committed_total(proxy.address, "sentiment", "posts") == FIRST + REST,
                 180, "the service to commit the whole input")  # fmt: skip
        ids = ids_of(read_all(proxy.address, "posts.sentiment"))
        assert set(ids) == {r["id"] for r in rows}
        print(f"stuck: /healthz said {answers[-1][1].strip()!r} after {len(answers)} probes")
        assert svc.stop() == 0
    finally:
        if svc is not None and svc.proc.poll() is None:
            svc.kill()
        broker.stop()
        proxy.stop()
