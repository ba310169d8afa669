"""A TCP proxy in front of a broker that can hold back one client's Produce requests.

Tests use it to fail deliveries on purpose, and only deliveries: the service keeps fetching its
input while its results cannot reach the broker, so a batch is in flight with certainty when its
delivery times out. Pausing the whole broker (SIGSTOP) cannot promise that; it depends on how far
the service had got. The broker advertises the proxy's address, so every client connects
through it; Kafka's request header (length, api_key, api_version, correlation_id, client_id)
tells the held client's Produce requests apart from everyone else's.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

from consumer.embedded_broker import free_port

PRODUCE = 0


class ProduceHolder:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.upstream_port = host, upstream_port
        self.port = free_port(host)
        self._open = threading.Event()
        self._open.set()
        self._held_prefix = ""
        self.held_requests = 0  # Produce requests that met a closed gate
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
        """From now on, Produce requests of clients whose id starts with the prefix wait."""
        self._held_prefix = client_id_prefix
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def stop(self) -> None:
        self._stop.set()
        self._open.set()
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
                if (
                    api_key == PRODUCE
                    and not self._open.is_set()
                    and client_id.startswith(self._held_prefix)
                ):
                    self.held_requests += 1
                    self._open.wait()
                dst.sendall(head + body)
        except (OSError, ConnectionError, struct.error):
            _close(src, dst)

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
