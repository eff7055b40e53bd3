"""The reverse proxy to legacy systems: ``/s/{system}/…`` and systems on hosts of their own.

``proxy`` is the request path (session, level, headers, instance choice, retries,
answers); ``forwarding`` the header rules each way; ``upstream`` the client interface with
``h1`` and ``aiohttp_upstream`` behind it (what the proxy learns of instances goes to
:mod:`gateway.health`); ``hosts`` and ``dispatch`` how requests reach it ahead of Starlette's stack.
"""

from gateway.proxy.aiohttp_upstream import AiohttpUpstream
from gateway.proxy.dispatch import ProxyFirst
from gateway.proxy.h1 import H1Upstream
from gateway.proxy.proxy import PREFIX, Proxy
from gateway.proxy.upstream import (
    Upstream,
    UpstreamConnectError,
    UpstreamError,
    UpstreamFailed,
    UpstreamResponse,
    UpstreamTimeout,
)

__all__ = [
    "PREFIX",
    "AiohttpUpstream",
    "H1Upstream",
    "Proxy",
    "ProxyFirst",
    "Upstream",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamFailed",
    "UpstreamResponse",
    "UpstreamTimeout",
]
