"""A path prefix answered by its own ASGI app, ahead of the Starlette router."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class PrefixDispatch:
    """Pure ASGI middleware: HTTP requests under ``prefix`` go to ``handler``, the rest to
    the app. The proxy (``/s/``) carries most of the gateway's requests and needs none of
    the router's work; errors it does not answer itself still reach the app's 500 page,
    as this sits inside Starlette's ``ServerErrorMiddleware``."""

    def __init__(self, app: ASGIApp, *, prefix: str, handler: ASGIApp) -> None:
        self.app = app
        self.prefix = prefix
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            await self.handler(scope, receive, send)
        else:
            await self.app(scope, receive, send)
