"""The probes' logic (consumer.http_server.Health) on an injected clock and lag: no broker, no
sleeps. A loop that turns but moves no post while posts wait must fail /healthz after
SENTIMENT_STUCK_SECONDS, and pass again once posts move. The end-to-end check, with the
service's fetches held back by a proxy, is in tests/test_consumer_stuck.py."""

from __future__ import annotations

import urllib.error
import urllib.request

from consumer import metrics
from consumer.http_server import Health, HttpServer

STUCK = 300.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Lag:
    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> int:
        return self.value


def health(stuck: float = STUCK) -> tuple[Health, Clock, Lag]:
    clock, lag = Clock(), Lag()
    return Health(stall_seconds=60, stuck_seconds=stuck, lag=lag, clock=clock), clock, lag


def idle(h: Health, clock: Clock, seconds: float) -> None:
    """The loop turns every second for `seconds`, consuming nothing."""
    for _ in range(int(seconds)):
        clock.advance(1)
        h.beat()


def test_a_loop_that_turns_with_posts_waiting_and_none_moving_is_not_live() -> None:
    h, clock, lag = health()
    lag.value = 1245
    idle(h, clock, STUCK)
    assert h.live() == (True, "ok")  # not longer than the bound yet
    idle(h, clock, 1)
    ok, why = h.live()
    assert not ok
    assert (
        why == "1245 posts waiting on the assigned partitions, none consumed or delivered for 301 s"
    )
    assert h.ready() == (False, why)  # a pod about to be restarted takes no traffic either


def test_consuming_or_delivering_makes_it_live_again() -> None:
    h, clock, lag = health()
    lag.value = 10
    idle(h, clock, STUCK + 5)
    assert not h.live()[0]
    h.progress()  # a batch consumed
    assert h.live() == (True, "ok")
    idle(h, clock, STUCK + 5)
    assert not h.live()[0]
    h.progress()  # a batch's results delivered, nothing new consumed
    assert h.live() == (True, "ok")


def test_an_idle_topic_is_never_stuck() -> None:
    h, clock, _ = health()
    idle(h, clock, 10 * STUCK)
    assert h.live() == (True, "ok")
    assert h.seconds_since_progress() == 10 * STUCK


def test_posts_arriving_after_an_idle_hour_are_not_an_hour_of_standstill() -> None:
    h, clock, lag = health()
    idle(h, clock, 3600)
    lag.value = 500  # a burst arrives; the next consume takes it
    idle(h, clock, 5)
    assert h.live() == (True, "ok")
    # Not taken: the stuck time counts from the last turn that saw no lag.
    idle(h, clock, STUCK - 5)
    assert h.live() == (True, "ok")
    idle(h, clock, 1)
    assert h.live() == (
        False,
        "500 posts waiting on the assigned partitions, none consumed or delivered for 301 s",
    )


def test_lag_gone_without_progress_is_live() -> None:
    """Partitions revoked, or the lag caught up by a delivery counted elsewhere: no posts wait."""
    h, clock, lag = health()
    lag.value = 10
    idle(h, clock, STUCK + 5)
    assert not h.live()[0]
    lag.value = 0
    assert h.live() == (True, "ok")


def test_zero_turns_the_check_off() -> None:
    h, clock, lag = health(stuck=0)
    lag.value = 10
    idle(h, clock, 10 * STUCK)
    assert h.live() == (True, "ok")


def test_a_stalled_loop_is_reported_as_stalled_first() -> None:
    h, clock, lag = health()
    lag.value = 10
    clock.advance(STUCK + 5)  # no beat: the loop itself stopped turning
    assert h.live() == (False, f"poll loop stalled for {STUCK + 5:.0f} s")


def test_seconds_since_progress_is_read_when_prometheus_scrapes() -> None:
    h, clock, _ = health()
    metrics.SECONDS_SINCE_PROGRESS.set_function(h.seconds_since_progress)
    clock.advance(42)
    assert metrics.REGISTRY.get_sample_value("sentiment_seconds_since_progress") == 42
    h.progress()
    assert metrics.REGISTRY.get_sample_value("sentiment_seconds_since_progress") == 0


def test_healthz_answers_503_with_the_reason_and_200_once_posts_move() -> None:
    h, clock, lag = health()
    h.model_loaded = h.in_group = True
    server = HttpServer(0, h, host="127.0.0.1")
    server.start()

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    try:
        lag.value = 7
        idle(h, clock, STUCK + 1)
        assert get("/healthz") == (
            503,
            "7 posts waiting on the assigned partitions, none consumed or delivered for 301 s\n",
        )
        h.progress()
        assert get("/healthz") == (200, "ok\n")
        assert get("/readyz") == (200, "ok\n")
    finally:
        server.stop()
