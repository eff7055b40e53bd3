"""Requests to the gateway's own routes, counted and timed by route template.

A pure ASGI middleware inside Starlette's stack: the router writes the matched route into
the request's scope (``scope["route"]``), so once the app has answered, the label is the
route's template (``/go/{item}``), never the path a client sent; a path no route matches
is ``unmatched``. The status is the one the answer started with; an exception that
escapes (Starlette's error middleware answers it) counts as ``500``. The time runs until
the answer's last byte was handed to the server. The proxy's requests never come here
(``ProxyFirst`` sends them past Starlette): the proxy records its own.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.metrics.recorder import Metrics

__all__ = ["UNMATCHED", "RouteMetrics"]

UNMATCHED = "unmatched"


class RouteMetrics:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self.metrics.request(template, scope["method"], status,
                                 time.perf_counter() - start)
