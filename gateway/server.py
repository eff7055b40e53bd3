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

httptools (llhttp) has no limit on a request head: a 16 MiB header line or 100,000 lines
would be read, kept and handed to the app. :class:`TurnWritesHttpToolsProtocol` counts a
head while it arrives (``[gateway] max_header_*``, as nginx's
``large_client_header_buffers``; :class:`~gateway.proxy.dispatch.HeadLimits`): past
``max_header_size`` bytes
or ``max_headers`` lines it answers ``431``, parses no further, and closes the connection
without the app ever seeing the request — after reading and dropping what the client
still sends for :data:`LINGER` seconds, so that the client reads the answer rather than a
reset. Every limit of a head that did arrive (each line, all of them, their number, the
request line) is checked one hop later, in one pass, by
:class:`~gateway.proxy.dispatch.ProxyFirst`.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib.util
from typing import Any, ClassVar

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.logs import RequestIds
from gateway.pages import Pages
from gateway.proxy.dispatch import HeadLimits, head_refused

__all__ = [
    "HSTS",
    "HTTP",
    "LINGER",
    "LOOP",
    "HoldingTransport",
    "TurnWritesHttpToolsProtocol",
    "freeze_startup_objects",
    "limited_protocol",
    "uvicorn_config",
]

# Both are dependencies (uvloop not on Windows): the fastest loop and HTTP parser measured.
#: With an https issuer every answer tells browsers to use https only, for two years (the
#: issuer's host only: systems' hosts answer for themselves; no ``preload``, a commitment
#: an operator makes).
HSTS = "max-age=63072000"

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
    """uvicorn's httptools protocol over a :class:`HoldingTransport`, that stops reading a
    request head past :attr:`limits` (see the module docstring).

    A head is open from its first byte (uvicorn makes a new ``scope``) until its last
    header (uvicorn sets ``scope["method"]``). Whatever is read while one stays open is
    counted; past ``limits.size`` bytes, or ``limits.count`` lines, the head is refused.
    A large read outside a body is parsed a slice of ``limits.size`` at a time, so that
    no more is parsed past the limits than that. The exact limits of a head that did
    arrive are :class:`~gateway.proxy.dispatch.ProxyFirst`'s; this costs a normal request
    two look-ups."""

    limits: ClassVar[HeadLimits] = HeadLimits()
    _pages: ClassVar[Pages | None] = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._read = 0  # bytes of the open head read after the read it began in
        self._refused = False  # answered 431: the rest is read and dropped, unparsed
        super().connection_made(HoldingTransport(transport, self.loop))  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        step = self.limits.size
        if len(data) <= step or self._in_body():
            self._feed(data)
            return
        for at in range(0, len(data), step):
            self._feed(data[at:at + step])
            if self._refused or self.transport.is_closing():
                return

    def _feed(self, data: bytes) -> None:
        before = self.scope
        was_open = before is not None and "method" not in before
        _data_received(self, data)
        scope = self.scope
        if scope is None or "method" in scope or self._refused:
            return  # no head open
        self._read = self._read + len(data) if scope is before and was_open else 0
        if self._read > self.limits.size or len(self.headers) > self.limits.count:
            self._refuse()

    def _in_body(self) -> bool:
        scope, cycle = self.scope, self.cycle
        return (scope is not None and "method" in scope and cycle is not None
                and cycle.more_body)

    def _refuse(self) -> None:
        """Answer 431 (the page or JSON the app would give) and close: our side at once,
        theirs after reading and dropping what they still send for up to :data:`LINGER`
        seconds (nginx's lingering close), so the client reads the answer instead of a
        reset. The app never sees the request."""
        self._refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an answer is on its way (pipelining): no second one
            return
        pages = TurnWritesHttpToolsProtocol._pages
        if pages is None:
            pages = TurnWritesHttpToolsProtocol._pages = Pages()
        answer = head_refused(431, self.headers or [], pages)
        head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in answer.raw_headers]
        self.transport.write(b"".join(head) + b"\r\n" + bytes(answer.body))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER, self.transport.close)
        else:
            self.transport.close()


_data_received = HttpToolsProtocol.data_received

LINGER = 5.0
"""Seconds a refused connection is still read (and dropped) before it is closed."""

@functools.cache
def limited_protocol(limits: HeadLimits) -> type[TurnWritesHttpToolsProtocol]:
    """The protocol class refusing heads over ``limits`` (one class per set of limits)."""
    if limits == TurnWritesHttpToolsProtocol.limits:
        return TurnWritesHttpToolsProtocol
    return type("LimitedTurnWritesHttpToolsProtocol", (TurnWritesHttpToolsProtocol,),
                {"limits": limits})


HTTP = TurnWritesHttpToolsProtocol


def uvicorn_config(app: ASGIApp, *, host: str, port: int, access_log: bool = True,
                   log_level: str = "info", limits: HeadLimits | None = None,
                   trusted_proxies: tuple[str, ...] = (), https: bool = False
                   ) -> uvicorn.Config:
    """uvloop, httptools with writes sent per loop turn and request heads within
    ``limits``, the app's own lifespan. ``X-Forwarded-*`` from clients are not trusted
    (``proxy_headers=False``): the proxy sets its own. No ``Server: uvicorn`` header: the
    gateway does not advertise its software, and a proxied answer keeps the system's own
    ``Server``.

    Every request gets an id for the logs (:class:`gateway.logs.RequestIds`; one sent in
    ``X-Request-Id`` is kept only from ``trusted_proxies``). uvicorn
    installs no log handlers of its own (``log_config=None``): its loggers hand their
    records up to the root logger, which :func:`gateway.logs.configure_logging` (called
    once by ``roam`` and the demo) gives the JSON handler, so its lines are JSON too."""
    http = limited_protocol(limits or HeadLimits())
    headers = [("Strict-Transport-Security", HSTS)] if https else []
    return uvicorn.Config(RequestIds(app, trusted=trusted_proxies, headers=headers),
                          host=host, port=port,
                          loop=LOOP, http=http,
                          lifespan="on", proxy_headers=False, server_header=False,
                          access_log=access_log, log_level=log_level, log_config=None)


def freeze_startup_objects() -> None:
    """Called once before serving: what exists now (modules, config, the app, ~100,000
    objects) lives as long as the process, so it leaves the cycle collector's
    generations (``gc.freeze``). A full collection then walks only what was made since,
    instead of every object each time (tens of ms; ~2 % of a saturated server's CPU,
    bench/ops_cost.py). Objects frozen are still freed when their last reference goes."""
    gc.collect()
    gc.freeze()
