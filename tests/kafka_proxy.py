"""A TCP proxy in front of a broker that can hold back one client's requests of one kind.

Tests use it to fail one thing on purpose and only that: with Produce held, the service keeps
fetching its input while its results cannot reach the broker, so a batch is in flight with
certainty when its delivery times out; with Fetch held, the service keeps polling, heartbeating
and committing while no post reaches it. Pausing the whole broker (SIGSTOP) cannot promise
either; it depends on how far the service had got. The broker advertises the proxy's address,
so every client connects through it; Kafka's request header (length, api_key, api_version,
correlation_id, client_id) tells the held client's requests apart from everyone else's. A held
request also holds back the requests behind it on its connection (Kafka answers a connection's
requests in order); librdkafka's group coordinator has a connection of its own.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

from consumer.embedded_broker import free_port

PRODUCE = 0  # Kafka api keys
FETCH = 1


class RequestHolder:
    def __init__(self, upstream_port: int, api_key: int, host: str = "127.0.0.1") -> None:
        self.host, self.upstream_port, self.api_key = host, upstream_port, api_key
        self.port = free_port(host)
        self._gate = threading.Condition()
        self._holding = False
        self._passes = 0  # held requests that may go on while the gate stays closed
        self._held_prefix = ""
        self.held_requests = 0  # requests of the api key that met a closed gate
        self.waiting = 0  # of those, the ones being held now
        self._server = socket.create_server((host, self.port))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        self._spawn(self._accept)

    def hold(self, client_id_prefix: str) -> None:
        """From now on, requests of the api key from clients whose id starts with the prefix
        wait."""
        with self._gate:
            self._held_prefix = client_id_prefix
            self._holding = True

    def pass_one(self) -> None:
        """Let one held request (the one waiting, else the next) through; hold the rest."""
        with self._gate:
            self._passes += 1
            self._gate.notify_all()

    def release(self) -> None:
        with self._gate:
            self._holding, self._passes = False, 0
            self._gate.notify_all()

    def stop(self) -> None:
        self._stop.set()
        self.release()
        self._server.close()
        for s in self._sockets:
            s.close()

    def _spawn(self, target, *args) -> None:  # type: ignore[no-untyped-def]
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection((self.host, self.upstream_port))
            self._sockets += [client, upstream]
            self._spawn(self._requests, client, upstream)
            self._spawn(self._pipe, upstream, client)

    def _requests(self, src: socket.socket, dst: socket.socket) -> None:
        """Client to broker, a whole request at a time, so the header can be read."""
        try:
            while True:
                head = _read(src, 4)
                (size,) = struct.unpack(">i", head)
                body = _read(src, size)
                api_key = struct.unpack(">h", body[:2])[0]
                (id_len,) = struct.unpack(">h", body[8:10])
                client_id = body[10 : 10 + id_len].decode() if id_len > 0 else ""
                if api_key == self.api_key:
                    self._wait_at_gate(client_id)
                dst.sendall(head + body)
        except (OSError, ConnectionError, struct.error):
            _close(src, dst)

    def _wait_at_gate(self, client_id: str) -> None:
        with self._gate:
            if not self._holding or not client_id.startswith(self._held_prefix):
                return
            self.held_requests += 1
            self.waiting += 1
            self._gate.wait_for(lambda: not self._holding or self._passes > 0)
            self.waiting -= 1
            if self._holding:
                self._passes -= 1

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        _close(src, dst)


def _read(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _close(*socks: socket.socket) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.close()
