"""The service's HTTP side: /metrics for Prometheus, /healthz and /readyz for Kubernetes.

It runs in a daemon thread and only reads state the poll loop publishes in `Health`; the loop
never waits on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from consumer.metrics import REGISTRY


class Health:
    """What the probes report. The loop calls `beat()` every turn and `progress()` whenever it
    consumes posts or a batch's results are delivered.

    Live: the loop turned within `stall_seconds`, and it is not stuck: with `stuck_seconds` set
    (0 is off), posts waiting on the assigned partitions (`lag()`, the sum of the lag gauge) and
    none consumed or delivered for that long fail it too. A loop can turn while consume() hands
    it nothing at all; only the lag shows that there was something to hand. The stuck time counts
    from the last progress or the last turn that found no lag, whichever is later, so posts that
    arrive after an idle hour are not taken for an hour's standstill. Ready: live, the model is
    loaded and the consumer has joined its group (it received an assignment, possibly empty).
    """

    def __init__(
        self,
        stall_seconds: float = 60.0,
        stuck_seconds: float = 0.0,
        lag: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stall_seconds = stall_seconds
        self.stuck_seconds = stuck_seconds
        self.model_loaded = False
        self.in_group = False
        self.stopping = False
        self._lag, self._clock = lag, clock
        self._last_beat = self._last_progress = self._caught_up = clock()

    def beat(self) -> None:
        self._last_beat = self._clock()
        if self.stuck_seconds and self._lag() <= 0:
            self._caught_up = self._last_beat

    def progress(self) -> None:
        self._last_progress = self._clock()

    def seconds_since_progress(self) -> float:
        """Since a post was last consumed or a batch delivered (or the service started)."""
        return self._clock() - self._last_progress

    def live(self) -> tuple[bool, str]:
        now = self._clock()
        age = now - self._last_beat
        if age > self.stall_seconds:
            return False, f"poll loop stalled for {age:.0f} s"
        if self.stuck_seconds:
            waiting = self._lag()
            stuck = now - max(self._last_progress, self._caught_up)
            if waiting > 0 and stuck > self.stuck_seconds:
                return False, (
                    f"{waiting} posts waiting on the assigned partitions, none consumed or "
                    f"delivered for {stuck:.0f} s"
                )
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        ok, why = self.live()
        if not ok:
            return ok, why
        if self.stopping:
            return False, "shutting down"
        if not self.model_loaded:
            return False, "model not loaded"
        if not self.in_group:
            return False, "not in the consumer group yet"
        return True, "ok"


def _handler(health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, why = health.live() if path == "/healthz" else health.ready()
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain; charset=utf-8")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would drown the service's own log

    return Handler


class HttpServer:
    def __init__(self, port: int, health: Health, host: str = "0.0.0.0") -> None:  # noqa: S104
        self._server = ThreadingHTTPServer((host, port), _handler(health))
        self._server.daemon_threads = True
        # A short poll interval lets stop() return quickly during shutdown.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
