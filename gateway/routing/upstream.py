"""The proxy's upstream client: a small interface, its errors, and aiohttp behind it.

aiohttp's transport measured several times faster than httpx's on this machine; the app
now attaches the leaner :class:`gateway.routing.h1.H1Upstream` (``bench/proxy_parts.py``),
and the ``Upstream`` interface keeps the choice swappable.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from yarl import URL

from gateway.routing.forwarding import Headers

CHUNK = 64 * 1024


class UpstreamError(Exception):
    """An upstream transport failure, converted from the client library's own errors."""


class UpstreamConnectError(UpstreamError):
    """No connection was made: nothing was sent, so another instance may be tried."""


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
    """Sends one request upstream; returns once the response head has arrived."""

    async def send(self, method: str, url: str, headers: Headers,
                   body: AsyncIterable[bytes] | None, *, wait: float) -> UpstreamResponse: ...


class AiohttpUpstream:
    """:class:`Upstream` over a shared ``aiohttp.ClientSession`` (owned by the app's lifespan).

    Redirects are not followed and bodies are not decompressed (the client gets the bytes
    the system sent); aiohttp adds no ``Accept-Encoding`` or ``User-Agent`` of its own.
    ``wait`` (seconds) bounds the connect and every wait for data, not the whole transfer, so a
    large download is not cut off while it keeps flowing.
    """

    def __init__(self, session: aiohttp.ClientSession, *, chunk_size: int = CHUNK) -> None:
        self.session = session
        self.chunk_size = chunk_size
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}  # one per system timeout

    async def send(self, method: str, url: str, headers: Headers,
                   body: AsyncIterable[bytes] | None, *, wait: float) -> UpstreamResponse:
        try:
            resp = await self.session.request(
                method, URL(url, encoded=True), headers=headers, data=body,
                allow_redirects=False, auto_decompress=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
                timeout=self._timeout(wait))
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise UpstreamConnectError(str(exc) or type(exc).__name__) from exc
        except TimeoutError as exc:
            raise UpstreamTimeout(str(exc) or "no response in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailed(str(exc) or type(exc).__name__) from exc

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in resp.content.iter_chunked(self.chunk_size):
                    yield chunk
            except TimeoutError as exc:
                raise UpstreamTimeout("stalled while sending the body") from exc
            except aiohttp.ClientError as exc:
                raise UpstreamFailed(str(exc) or type(exc).__name__) from exc

        async def read() -> bytes:
            try:
                return await resp.read()
            except TimeoutError as exc:
                raise UpstreamTimeout("stalled while sending the body") from exc
            except aiohttp.ClientError as exc:
                raise UpstreamFailed(str(exc) or type(exc).__name__) from exc

        async def close() -> None:
            resp.release()

        headers_out = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
        return UpstreamResponse(resp.status, headers_out, chunks(), close, read)

    def _timeout(self, wait: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(wait)
        if timeout is None:
            timeout = self._timeouts[wait] = aiohttp.ClientTimeout(
                total=None, connect=wait, sock_read=wait)
        return timeout
