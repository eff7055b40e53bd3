"""aiohttp behind the proxy's :class:`~gateway.proxy.upstream.Upstream` interface.

The second implementation beside :class:`~gateway.proxy.h1.H1Upstream`: aiohttp's
transport measured several times faster than httpx's here, H1Upstream faster still
(``bench/proxy_parts.py``). The proxy tests run on both, so either can carry the gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import aiohttp
from yarl import URL

from gateway.proxy.forwarding import Headers
from gateway.proxy.upstream import (
    UpstreamConnectError,
    UpstreamFailed,
    UpstreamResponse,
    UpstreamTimeout,
)

__all__ = ["AiohttpUpstream"]

CHUNK = 64 * 1024


class AiohttpUpstream:
    """:class:`Upstream` over an ``aiohttp.ClientSession`` of its own, opened on first use
    (it needs the running loop) and closed by :meth:`aclose`.

    Redirects are not followed and bodies are not decompressed (the client gets the bytes
    the system sent); aiohttp adds no ``Accept-Encoding`` or ``User-Agent`` of its own.
    ``wait`` (seconds) bounds the connect and every wait for data, not the whole transfer, so a
    large download is not cut off while it keeps flowing.
    """

    def __init__(self, *, chunk_size: int = CHUNK) -> None:
        self.chunk_size = chunk_size
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}  # one per system timeout

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

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
