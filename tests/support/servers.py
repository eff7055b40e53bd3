"""Real HTTP servers for tests: uvicorn on a free loopback port, in a background thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from gateway.server import HTTP


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any, port: int | None = None, **options: Any) -> Iterator[str]:
    """Run ``app`` until the block ends; yields its base URL ``http://127.0.0.1:PORT``.

    ``options`` go to ``uvicorn.Config`` (e.g. an access log for a test that reads it). The
    HTTP protocol is the one ``roam serve`` runs (gateway/server.py), so every test that
    talks to a server goes through it.
    """
    port = port or free_port()
    settings: dict[str, Any] = {"log_level": "warning", "lifespan": "on", "http": HTTP,
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
