"""The gateway's Starlette app, with the proxy's requests taken before Starlette's stack."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.proxy.hosts import host_routed

__all__ = ["ProxyFirst"]


class ProxyFirst(Starlette):
    """Starlette, except that two kinds of HTTP request go straight to ``proxy``: any
    request on a system's own host name (``hosts``: host name → system id, rewritten to
    ``/s/<system>/…`` by :func:`~gateway.proxy.hosts.host_routed`) and any path under
    ``prefix``.

    The proxy carries most of the gateway's requests and needs none of Starlette's
    middleware, router or request wrapping: skipping them was the largest single saving in
    ``bench/proxy.py`` (docs/performance.md). So the proxy answers its own errors,
    unexpected ones included (a 500 with a reference id)."""

    def __init__(self, *, proxy: ASGIApp, prefix: str, hosts: Mapping[str, str],
                 **starlette: Any) -> None:
        super().__init__(**starlette)
        self.proxy = proxy
        self.prefix = prefix
        self.hosts = dict(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self.hosts:
                scope = host_routed(scope, self.hosts)
            if scope["path"].startswith(self.prefix):
                await self.proxy(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
