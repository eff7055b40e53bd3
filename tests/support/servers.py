"""Real HTTP servers for tests: uvicorn on a free loopback port, in a background thread."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from gateway.server import HTTP

_GIVEN: set[int] = set()
_GIVING = threading.Lock()


def _below_ephemeral() -> range:
    """Ports the kernel never gives an outbound connection: below Linux's
    ``ip_local_port_range``. A port picked there and bound a moment later cannot have been
    taken meanwhile by a client's connection (a port from ``bind(0)`` can: the CI once lost
    a demo server's port to one)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return range(0)
    return range(20000, low) if low > 21000 else range(0)


_PORTS = _below_ephemeral()


def free_port() -> int:
    """A port free now, never one this test run handed out before: a test that takes two
    ports before binding either must not get the same one twice. Taken below the
    ephemeral range where there is one (else the kernel's pick)."""
    while True:
        candidate = random.choice(_PORTS) if _PORTS else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue  # in use: another
            port = int(sock.getsockname()[1])
        with _GIVING:
            if port not in _GIVEN:
                _GIVEN.add(port)
                return port


@contextlib.contextmanager
def serve(app: Any, port: int | None = None, **options: Any) -> Iterator[str]:
    """Run ``app`` until the block ends; yields its base URL ``http://127.0.0.1:PORT``.

    ``options`` go to ``uvicorn.Config`` (e.g. an access log for a test that reads it). The
    HTTP protocol is the one ``roam serve`` runs (gateway/server.py), so every test that
    talks to a server goes through it.
    """
    port = port or free_port()
    settings: dict[str, Any] = {"log_level": "warning", "lifespan": "on", "http": HTTP,
                                "proxy_headers": False,  # as `roam serve`: trusts no client
                                **options}
    with serve_config(uvicorn.Config(app, host="127.0.0.1", port=port, **settings)) as url:
        yield url


@contextlib.contextmanager
def serve_config(config: uvicorn.Config) -> Iterator[str]:
    """Run a server made from ``config`` (host 127.0.0.1) until the block ends."""
    port = config.port
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class RecordingUpstream:
    """A raw-socket HTTP/1.1 upstream that keeps every byte it receives.

    Each request (a head, then a ``Content-Length`` body) gets ``answer``, keep-alive.
    ``received`` holds everything read, per connection in order; ``connections`` counts
    those accepted. Nothing in between normalises what arrives: a test sees exactly
    what the gateway sent. Use as a context manager; yields the base URL.
    """

    def __init__(self, answer: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") -> None:
        self.answer = answer
        self.received: list[bytearray] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

    @property
    def heads(self) -> list[bytes]:
        """Every request head received (all connections), each up to its blank line."""
        return [head + b"\r\n\r\n" for data in self.received
                for head in bytes(data).split(b"\r\n\r\n")[:-1] if head]

    def __enter__(self) -> str:
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                buffer = bytearray()
                self.received.append(buffer)
            thread = threading.Thread(target=self._serve, args=(conn, buffer), daemon=True)
            thread.start()

    def _serve(self, conn: socket.socket, buffer: bytearray) -> None:
        pending = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                pending += data
                while b"\r\n\r\n" in pending:
                    head, _, rest = pending.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value.strip() or b"0")
                    if len(rest) < length:
                        break
                    pending = rest[length:]
                    conn.sendall(self.answer)


def raw_exchange(url: str, request: bytes, *, timeout: float = 10.0) -> bytes:
    """Send ``request`` as it is over a new connection to ``url``'s host and port; return
    all the server answers until it closes (or ``timeout`` passes quietly)."""
    host, _, port = url.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server stopped reading: read its answer
            sock.sendall(request)
        answer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
            if _whole(answer):
                break
    return answer


def _whole(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False
