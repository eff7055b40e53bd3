"""How the gateway runs under uvicorn: one set of options for ``roam serve`` and the benches,
so what ``bench/`` measures is what production runs.

uvicorn's httptools protocol writes a response's head and its body with two
``transport.write`` calls, and uvloop turns each into a ``send()`` at once: two system calls
per answer where one would do, and on loopback each also runs the receiver's side of TCP.
:class:`TurnWritesHttpToolsProtocol` gives uvicorn a transport that holds what is written
during one turn of the event loop and sends it at the end of that turn: the head and body
of an answer leave in one ``send()``, and the answers of all requests finished in the same
turn leave together, so a client waiting for several wakes once. Measured A/B in one run of
``bench/proxy.py`` (docs/performance.md): one send per answer took 4493 to 4964 proxied
requests/s; sending at the turn's end instead of at each answer's end, 3464 to 4140 (a
slower hour of the machine). A streamed answer still streams: each chunk leaves at the end
of the turn that wrote it.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.logs import RequestIds

__all__ = ["HTTP", "LOOP", "HoldingTransport", "TurnWritesHttpToolsProtocol", "uvicorn_config"]

# Both are dependencies (uvloop not on Windows): the fastest loop and HTTP parser measured.
LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


class HoldingTransport:
    """A transport whose ``write`` holds data until :meth:`flush`: scheduled by the first
    held write for the end of the loop's turn, and called by ``close``. Everything else
    passes through to the real transport (flow control included)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._timer: asyncio.Handle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._timer = self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._held:
            return
        held, self._held = self._held, []
        if not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = []
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._held))

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, ...
        return getattr(self._transport, name)


class TurnWritesHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a :class:`HoldingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HoldingTransport(transport, self.loop))  # type: ignore[arg-type]


HTTP = TurnWritesHttpToolsProtocol


def uvicorn_config(app: ASGIApp, *, host: str, port: int, access_log: bool = True,
                   log_level: str = "info") -> uvicorn.Config:
    """uvloop, httptools with writes sent per loop turn, the app's own lifespan.
    ``X-Forwarded-*`` from clients are not trusted (``proxy_headers=False``): the proxy
    sets its own. No ``Server: uvicorn`` header: the gateway does not advertise its
    software, and a proxied answer keeps the system's own ``Server``.

    Every request gets an id for the logs (:class:`gateway.logs.RequestIds`). uvicorn
    installs no log handlers of its own (``log_config=None``): its loggers hand their
    records up to the root logger, which :func:`gateway.logs.configure_logging` (called
    once by ``roam`` and the demo) gives the JSON handler, so its lines are JSON too."""
    return uvicorn.Config(RequestIds(app), host=host, port=port, loop=LOOP, http=HTTP,
                          lifespan="on", proxy_headers=False, server_header=False,
                          access_log=access_log, log_level=log_level, log_config=None)
