"""The service's HTTP side: /metrics for Prometheus, /healthz and /readyz for Kubernetes.

It runs in a daemon thread and only reads state the poll loop publishes in `Health`; the loop
never waits on it.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from consumer.metrics import REGISTRY


class Health:
    """What the probes report. The loop calls `beat()` every turn.

    Live: the loop turned within `stall_seconds`. Ready: live, the model is loaded and the
    consumer has joined its group (it received an assignment, possibly empty).
    """

    def __init__(self, stall_seconds: float = 60.0) -> None:
        self.stall_seconds = stall_seconds
        self.model_loaded = False
        self.in_group = False
        self.stopping = False
        self._last_beat = time.monotonic()

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def live(self) -> tuple[bool, str]:
        age = time.monotonic() - self._last_beat
        if age > self.stall_seconds:
            return False, f"poll loop stalled for {age:.0f} s"
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
