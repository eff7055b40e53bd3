"""One kept-alive HTTP/1.1 connection to an upstream, reading its answers with httptools.

The asyncio protocol under :class:`~gateway.proxy.h1.H1Upstream`: one request at a time
(:meth:`UpstreamConnection.begin`), its answer parsed as it arrives, the body queued for
the reader with reading paused past :data:`HIGH_WATER` bytes. An answer ends where its
``Content-Length`` or chunking says, or — with neither — when the upstream closes the
connection (RFC 9112 §6.3: HTTP/1.0, ``Connection: close``). Anything the upstream sends
when no answer is awaited — garbage or a second answer after a whole one, bytes while the
connection is idle — closes the connection: it is never read as part of that answer or as
the next request's (response smuggling, a desynchronised upstream).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import cast

import httptools

from gateway.proxy.forwarding import Headers
from gateway.proxy.upstream import UpstreamFailed

__all__ = ["HIGH_WATER", "Stale", "UpstreamConnection"]

HIGH_WATER = 256 * 1024


class Stale(Exception):
    """A reused connection turned out closed before any answer: safe to try a new one."""


class _Unasked(Exception):
    """An answer began after the one asked for was whole: nobody asked for it."""


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, key: tuple[str, str, int], on_lost: Callable[[], None]) -> None:
        self.key = key
        self.on_lost = on_lost  # the pool's: this connection's slot is free again
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False  # closed, or closing: never used again
        self.uses = 0  # requests begun on it
        self.error: BaseException | None = None
        self._can_write: asyncio.Future[None] | None = None
        self._reset(head_only=False)

    def _reset(self, *, head_only: bool) -> None:
        self.head_only = head_only
        self.status = 0
        self.headers: Headers = []
        self.head: asyncio.Future[None] | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.waiter: asyncio.Future[None] | None = None
        self.complete = False
        self.keep_alive = False
        self.received = False

    def begin(self, method: str) -> asyncio.Future[None]:
        self._reset(head_only=method == "HEAD")
        self.uses += 1
        self.head = asyncio.get_running_loop().create_future()
        return self.head

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.head is None or self.complete:  # no answer is awaited: nobody asked
            self._fail(UpstreamFailed("the upstream sent bytes nobody asked for"))
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamFailed("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamFailed(f"not an HTTP answer: {exc}"))

    def eof_received(self) -> bool:
        """The upstream closed its side: the end of an answer delimited by the close."""
        if (self.status and not self.complete and self.error is None
                and _ends_with_close(self.status, self.headers)):
            self.complete, self.keep_alive = True, False
            self._wake()
        return False  # and close ours

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.on_lost()
        if not self.complete:
            stale = not self.received and self.head is not None and not self.head.done()
            self._fail(Stale() if stale else UpstreamFailed("the upstream closed the connection"))
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_exception(UpstreamFailed("the upstream closed the connection"))

    def pause_writing(self) -> None:
        self._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)
        self._can_write = None

    async def drain(self) -> None:
        if self._can_write is not None:
            await self._can_write

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self.complete:
            raise _Unasked  # stops the parser: the connection closes, the answer stands
        self.headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # informational: the real answer follows
        self.status = status
        if self.head_only:
            self.complete, self.keep_alive = True, False
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.status == 0 or self.head_only:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status == 0:
            return  # the end of a 1xx answer
        if not self.head_only:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # helpers
    def take(self) -> bytes:
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.buffered <= HIGH_WATER and self.transport is not None and not self.closed:
            self.transport.resume_reading()
        return chunk

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        """Close the connection; an answer still awaited fails (one already whole stands:
        what broke came after it)."""
        if not self.complete:
            self.error = error
            if self.head is not None and not self.head.done():
                self.head.set_exception(error)
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(error)
        self.keep_alive = False
        self.close()


def _ends_with_close(status: int, headers: Headers) -> bool:
    """Whether an answer's body is delimited by the connection's close (RFC 9112 §6.3):
    one that may have a body, with neither ``Content-Length`` nor chunked coding."""
    if status in (204, 304):
        return False
    for name, value in headers:
        lower = name.lower()
        if lower == "content-length" or (lower == "transfer-encoding"
                                         and "chunked" in value.lower()):
            return False
    return True
