"""The gateway's Starlette app, with the proxy's requests taken before Starlette's stack,
and request heads over the limits refused before anything else sees them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.config import GatewaySection
from gateway.errors import PageError
from gateway.pages import Pages
from gateway.proxy.answers import is_navigation
from gateway.proxy.hosts import host_routed

__all__ = ["HeadLimits", "ProxyFirst", "head_refused"]

log = logging.getLogger("roam.server")


@dataclass(frozen=True)
class HeadLimits:
    """How large a request head may be, as nginx's ``large_client_header_buffers 4 8k``:
    ``line`` bytes for the request line or any one header line, ``size`` for all header
    lines together, at most ``count`` header lines (``[gateway] max_header_*``).

    The server stops parsing a head still arriving past ``size`` or ``count``
    (``gateway/server.py``); :class:`ProxyFirst` checks every limit of a head that
    arrived, in one pass, whatever server runs the app. A line counts its ``: `` and
    CRLF."""

    line: int = 8192
    size: int = 32768
    count: int = 100

    @classmethod
    def of(cls, section: GatewaySection) -> HeadLimits:
        return cls(line=section.max_header_line, size=section.max_header_size,
                   count=section.max_headers)

    def refusal(self, scope: Scope) -> int:
        """0 if the head is within the limits, else the status to answer: 414 for a long
        request line, 431 for a header line, all of them or their number. One pass."""
        headers = scope["headers"]
        if len(headers) > self.count:
            return 431
        total = 0
        for name, value in headers:
            total += len(name) + len(value) + 4
        if total > self.line and (  # only then can one line be too long
                total > self.size or any(len(n) + len(v) + 4 > self.line for n, v in headers)):
            return 431
        if len(scope.get("raw_path", b"")) + len(scope.get("query_string", b"")) > self.line:
            return 414
        return 0


def head_refused(status: int, headers: list[tuple[bytes, bytes]], pages: Pages) -> Response:
    """The answer to a head over the limits: a Chinese page with a reference id for a
    person navigating, ``{"error": ..., "ref": ...}`` for a program; the connection closes."""
    if status == 414:
        page = PageError("请求地址过长", "请求的地址超过了允许的长度。", status=414)
        code = "uri_too_long"
    else:
        page = PageError("请求头过大", "请求头或 Cookie 过大，请清除本站 Cookie 后重试。",
                         status=431)
        code = "request_header_too_large"
    log.warning("request head refused",
                extra={"ref": page.ref, "status": status, "lines": len(headers)})
    request = Request({"type": "http", "headers": headers})
    answer: Response = (pages.error(page) if is_navigation(request) else
                        JSONResponse({"error": code, "ref": page.ref}, status_code=status,
                                     headers={"Cache-Control": "no-store"}))
    answer.headers["Connection"] = "close"
    return answer


class ProxyFirst(Starlette):
    """Starlette, except that two kinds of HTTP request go straight to ``proxy``: any
    request on a system's own host name (``hosts``: host name → system id, rewritten to
    ``/s/<system>/…`` by :func:`~gateway.proxy.hosts.host_routed`) and any path under
    ``prefix``. Before either, a head over ``limits`` is refused (414/431, never
    forwarded).

    The proxy carries most of the gateway's requests and needs none of Starlette's
    middleware, router or request wrapping: skipping them was the largest single saving in
    ``bench/proxy.py`` (docs/performance.md). So the proxy answers its own errors,
    unexpected ones included (a 500 with a reference id)."""

    def __init__(self, *, proxy: ASGIApp, prefix: str, hosts: Mapping[str, str],
                 limits: HeadLimits | None = None, pages: Pages | None = None,
                 **starlette: Any) -> None:
        super().__init__(**starlette)
        self.proxy = proxy
        self.prefix = prefix
        self.hosts = dict(hosts)
        self.limits = limits or HeadLimits()
        self.pages = pages or Pages()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            status = self.limits.refusal(scope)
            if status:
                await head_refused(status, scope["headers"], self.pages)(scope, receive, send)
                return
            if self.hosts:
                scope = host_routed(scope, self.hosts)
            if scope["path"].startswith(self.prefix):
                await self.proxy(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
