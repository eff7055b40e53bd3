"""ProxyFirst: the proxy's requests (by path prefix or by host) skip Starlette's stack."""

from __future__ import annotations

import httpx
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.proxy.dispatch import HeadLimits, ProxyFirst
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


def client(hosts: dict[str, str] | None = None,
           limits: HeadLimits | None = None) -> httpx.AsyncClient:
    app = ProxyFirst(proxy=proxy, prefix="/s/", hosts=hosts or {}, limits=limits,
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


async def test_a_head_over_the_limits_reaches_neither_the_proxy_nor_the_app() -> None:
    """The first ASGI hop checks the head too, for a server that does not (one pass)."""
    limits = HeadLimits(line=1024, size=4096, count=20)
    many = [(f"x-h{n}", "1") for n in range(20)]
    async with client(limits=limits) as http:
        for path in ("/s/a/b", "/login"):
            assert (await http.get(path, headers=many[:15])).status_code == 200
            for headers in (many, {"x-big": "a" * 1100},
                            {f"x-h{n}": "v" * 900 for n in range(5)}):
                refused = await http.get(path, headers=headers)
                assert refused.status_code == 431
                assert refused.json() == {"error": "request_header_too_large",
                                          "ref": refused.json()["ref"]}
                assert refused.headers["connection"] == "close"
            long = await http.get(path + "?q=" + "a" * 1100)
            assert long.status_code == 414
        page = await http.get("/s/a/b", headers={"accept": "text/html", "x-big": "a" * 1100})
    assert page.status_code == 431
    assert "请求头过大" in page.text
    assert '<code id="ref">' in page.text
