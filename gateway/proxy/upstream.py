"""The proxy's upstream client: a small interface and its errors.

Two implementations: :class:`gateway.proxy.h1.H1Upstream`, which the gateway runs
(``bench/proxy_parts.py`` chose it), and :class:`gateway.proxy.aiohttp_upstream.
AiohttpUpstream`; the interface keeps the choice swappable and the proxy tests run on both.
Each converts its library's errors into :class:`UpstreamError`'s subclasses here.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.proxy.forwarding import Headers

__all__ = [
    "Upstream",
    "UpstreamBusy",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamFailed",
    "UpstreamResponse",
    "UpstreamTimeout",
]


class UpstreamError(Exception):
    """An upstream transport failure, converted from the client library's own errors."""


class UpstreamConnectError(UpstreamError):
    """No connection was made: nothing was sent, so another instance may be tried."""


class UpstreamBusy(UpstreamError):
    """Every connection the origin may have stayed busy for the whole wait: nothing was
    sent (the proxy answers 503 with ``Retry-After``)."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer (or stalled) within the system's timeout."""


class UpstreamFailed(UpstreamError):
    """The connection broke or the upstream answered something that is not HTTP."""


@dataclass
class UpstreamResponse:
    status: int
    headers: Headers
    body: AsyncIterator[bytes]  # raises UpstreamError if the upstream stalls or breaks
    close: Callable[[], Awaitable[None]]  # idempotent; releases the connection
    read: Callable[[], Awaitable[bytes]]  # the whole body at once (small ones), same errors


class Upstream(Protocol):
    """Sends requests upstream over connections it pools; the lifespan closes it."""

    async def send(self, method: str, url: str, headers: Headers,
                   body: AsyncIterable[bytes] | None, *, wait: float) -> UpstreamResponse:
        """Send one request; return once the response head has arrived."""

    async def aclose(self) -> None:
        """Close every pooled connection (the upstream may be used again afterwards)."""
