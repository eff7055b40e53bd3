"""ProxyFirst: the proxy's requests (by path prefix or by host) skip Starlette's stack."""

from __future__ import annotations

import httpx
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.proxy.dispatch import ProxyFirst
from gateway.proxy.hosts import HOST_ROUTED


async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
    seen = {"path": scope["path"], "raw_path": scope["raw_path"].decode(),
            "host": scope.get(HOST_ROUTED), "marked": "outer" in scope}
    await JSONResponse(seen)(scope, receive, send)


async def page(request: Request) -> Response:
    return PlainTextResponse(f"app {request.url.path}")


class Mark:
    """A Starlette middleware: shows whether a request went through Starlette's stack."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app({**scope, "outer": True}, receive, send)


def client(hosts: dict[str, str] | None = None) -> httpx.AsyncClient:
    app = ProxyFirst(proxy=proxy, prefix="/s/", hosts=hosts or {},
                     routes=[Route("/{path:path}", page)], middleware=[Middleware(Mark)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def test_the_prefix_goes_to_the_proxy_the_rest_to_starlette() -> None:
    async with client() as http:
        assert (await http.get("/s/a/b?x=1")).json() == {
            "path": "/s/a/b", "raw_path": "/s/a/b", "host": None, "marked": False}
        assert (await http.get("/s")).text == "app /s"
        assert (await http.get("/sx/a")).text == "app /sx/a"
        assert (await http.get("/login")).text == "app /login"


async def test_a_systems_own_host_goes_to_its_proxy_route_whatever_the_path() -> None:
    async with client({"gjj.roam.test": "gjj"}) as http:
        on_host = await http.get("http://GJJ.roam.test:8443/login")
        elsewhere = await http.get("http://gw/login")
    assert on_host.json() == {"path": "/s/gjj/login", "raw_path": "/s/gjj/login",
                              "host": "gjj.roam.test:8443", "marked": False}
    assert elsewhere.text == "app /login"
