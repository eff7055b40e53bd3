"""Bodies on their way through the proxy: the client's, counted against the limit as it
streams (so a request can still be retried until any of it was sent), and a small
upstream answer read whole and sent in one message."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from gateway.proxy.forwarding import Headers

__all__ = ["SMALL_BODY", "Body", "TooLarge", "Whole", "small_length"]


class TooLarge(Exception):
    pass


class Body:
    """The client's body as an async iterable, counted against the limit; ``started``
    tells whether any of it was consumed (then the request can no longer be retried)."""

    def __init__(self, request: Request, limit: int) -> None:
        self.request = request
        self.limit = limit
        self.started = False
        self.too_large = False

    async def chunks(self) -> AsyncIterator[bytes]:
        self.started = True
        received = 0
        async for chunk in self.request.stream():
            received += len(chunk)
            if received > self.limit:
                self.too_large = True
                raise TooLarge
            if chunk:
                yield chunk


SMALL_BODY = 64 * 1024


class Whole:
    """An upstream answer read whole, as ASGI: its head, then its body in one message."""

    __slots__ = ("body", "headers", "status_code")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status_code, self.headers, self.body = status, headers, body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def small_length(headers: Headers) -> int | None:
    """The upstream's Content-Length if it announces a small body, else None (stream it)."""
    for name, value in headers:
        if name.lower() == "content-length":
            try:
                length = int(value)
            except ValueError:
                return None
            return length if 0 <= length <= SMALL_BODY else None
    return None
