"""PrefixDispatch: a path prefix served by its own ASGI app, the rest by the app."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.routing.dispatch import PrefixDispatch


async def handler(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse(f"handler {scope['path']}")(scope, receive, send)


async def fail(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("boom")


async def page(request: Request) -> Response:
    return PlainTextResponse(f"app {request.url.path}")


def app(prefix_handler: ASGIApp = handler) -> Starlette:
    return Starlette(routes=[Route("/{path:path}", page)], middleware=[
        Middleware(PrefixDispatch, prefix="/s/", handler=prefix_handler)])


async def test_the_prefix_goes_to_the_handler_the_rest_to_the_app() -> None:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        assert (await http.get("/s/a/b")).text == "handler /s/a/b"
        assert (await http.get("/s")).text == "app /s"
        assert (await http.get("/sx/a")).text == "app /sx/a"
        assert (await http.get("/login")).text == "app /login"


async def test_handler_errors_reach_the_apps_500() -> None:
    transport = httpx.ASGITransport(app=app(fail), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        response = await http.get("/s/a/b")
    assert response.status_code == 500
