"""The proxy against real upstreams: uvicorn on loopback ports, the gateway served for real."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from connectors.signed_header import SignedHeader, verify
from gateway.config import ServiceItem, SessionSection, SystemConfig, Systems
from gateway.identity import Identity, PersonKind
from gateway.legacy.access import Gate
from gateway.legacy.failover import Failover
from gateway.pages import Pages
from gateway.proxy.aiohttp_upstream import AiohttpUpstream
from gateway.proxy.answers import MiB
from gateway.proxy.dispatch import ProxyFirst
from gateway.proxy.forwarding import (
    client_response_headers,
    forwarded_headers,
    path_cookie_prefix,
    scoped_set_cookie,
    upstream_request_headers,
    without_cookies,
    without_hop_by_hop,
    without_set_cookies,
    without_underscores,
)
from gateway.proxy.h1 import H1Upstream
from gateway.proxy.proxy import PREFIX, Proxy
from gateway.proxy.upstream import Upstream
from gateway.routing.resolve import RoundRobin
from gateway.sessions import SessionManager
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore
from tests.support.health import local_health
from tests.support.servers import RecordingUpstream, free_port, raw_exchange, serve

SECRET = b"s" * 32
ITEM = "430000-GJJ-001"
BIG = 5 * 1000 * 1000
ALL = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


# -- the upstream: echoes what arrived, streams a big body, sleeps, redirects --------------

def upstream(name: str) -> Starlette:
    async def echo(request: Request) -> Response:
        digest = hashlib.sha256()
        length = 0
        try:
            async for chunk in request.stream():
                digest.update(chunk)
                length += len(chunk)
        except ClientDisconnect:  # the gateway cut an upload over its limit
            return Response(status_code=400)
        raw = request.scope["raw_path"].decode("latin-1")
        query = request.scope["query_string"].decode("latin-1")
        response = JSONResponse({
            "instance": name,
            "method": request.method,
            "path": raw + (f"?{query}" if query else ""),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")]
                        for k, v in request.headers.raw],
            "length": length,
            "sha256": digest.hexdigest(),
        })
        response.set_cookie("roam_session", "planted-by-upstream")
        response.set_cookie("app_sid", "upstream-own")
        return response

    async def big(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(BIG // 100_000):
                yield bytes([i % 251]) * 100_000
        return StreamingResponse(chunks(), media_type="application/octet-stream")

    async def slow(request: Request) -> Response:
        await asyncio.sleep(2)
        return JSONResponse({"late": True})

    async def drip(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(15):  # 1.5 s, a chunk each 0.1 s: never a stall
                await asyncio.sleep(0.1)
                yield b"drop;"
        return StreamingResponse(chunks(), media_type="text/plain")

    async def moved(request: Request) -> Response:
        base = f"{request.url.scheme}://{request.url.netloc}"
        return Response(status_code=302, headers={"Location": f"{base}/landing?x=1"})

    return Starlette(routes=[
        Route("/big", big, methods=["GET"]),
        Route("/slow", slow, methods=["GET"]),
        Route("/drip", drip, methods=["GET"]),
        Route("/moved", moved, methods=["GET"]),
        Route("/{path:path}", echo, methods=ALL),
    ])


def big_digest() -> str:
    digest = hashlib.sha256()
    for i in range(BIG // 100_000):
        digest.update(bytes([i % 251]) * 100_000)
    return digest.hexdigest()


# -- the gateway under test ---------------------------------------------------------------

def system(sid: str, instances: Sequence[str], *, min_acr: str = "L1",
           timeout: float = 30.0, pairwise: bool = False) -> SystemConfig:
    return SystemConfig.model_validate({
        "id": sid, "name": f"测试系统 {sid}", "region": "430100", "level": "prefecture",
        "instances": list(instances), "connector": "signed-header", "items": [ITEM],
        "min_acr": min_acr, "claims": ["name"], "timeout": timeout,
        "subject_type": "pairwise" if pairwise else "public",
    })


def gateway_app(systems: Systems, transport: str = "aiohttp", *,
                hosts: dict[str, str] | None = None, max_connections: int = 64,
                **proxy_options: Any) -> ProxyFirst:
    """The proxy on ``transport``: ``aiohttp`` (AiohttpUpstream) or ``h1`` (H1Upstream,
    at most ``max_connections`` per instance)."""
    sessions = SessionManager(MemoryStore(), SessionSection(), issuer="http://127.0.0.1:8000")
    connectors = {s.id: SignedHeader(secret=SECRET) for s in systems}
    proxy_options.setdefault("health", local_health(systems, passive_failures=100).outliers)
    upstream: Upstream = (H1Upstream(max_connections=max_connections) if transport == "h1"
                          else AiohttpUpstream())
    proxy = Proxy(upstream, systems=systems, connectors=connectors, gate=Gate(sessions),
                  cookie_names={"roam_csrf"}, **proxy_options)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await upstream.aclose()

    async def login(request: Request) -> Response:
        """Test-only: start a session at the level asked for."""
        identity = Identity(subject="c-0001", kind=PersonKind.NATURAL,
                            acr=request.query_params.get("acr", "L2"), amr=("pwd",),
                            auth_time=int(time.time()), region="430102",
                            claims={"name": "张三", "phone_number": "13812341234"})
        response = Response("ok")
        await sessions.start(identity, response)
        return response

    return ProxyFirst(proxy=proxy, prefix=PREFIX, hosts=hosts or {}, lifespan=lifespan,
                      routes=[Route("/test/login", login, methods=["GET"])])


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[str, str, str]]:
    """Two live instances and one address where nothing listens."""
    with serve(upstream("a")) as a, serve(upstream("b")) as b:
        yield a, b, f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module", params=["aiohttp", "h1"])
def gateway(upstreams: tuple[str, str, str], request: pytest.FixtureRequest) -> Iterator[str]:
    a, b, dead = upstreams
    systems = Systems([
        system("echo", [a]),
        system("spread", [a, b]),
        system("failover", [dead, b]),
        system("dead", [dead]),
        system("slow", [a], timeout=0.5),
        system("strict", [a], min_acr="L3"),
        system("paired", [a], pairwise=True),
    ], [ServiceItem(code=ITEM, name="住房公积金提取")])
    round_robin = RoundRobin()

    def choose(system_id: str, instances: Sequence[str]) -> str:
        if system_id == "failover":
            return instances[0]  # always the dead one first
        return round_robin(system_id, instances)

    port = free_port()
    app = gateway_app(systems, request.param, hosts={"echo.roam.test": "echo"},
                      max_body=6 * MiB, choose=choose, issuer=f"http://127.0.0.1:{port}")
    with serve(app, port=port, proxy_headers=False) as url:  # as roam serve runs
        yield url


class Proxied:
    """The proxy, served as ``roam serve`` serves it, in front of a recording upstream;
    ``head`` is a request for a proxied path with a live session, which would go through."""

    def __init__(self, url: str, upstream: RecordingUpstream, cookie: str) -> None:
        self.url = url
        self.upstream = upstream
        self.head = (f"GET /s/rec/x HTTP/1.1\r\nHost: {url.removeprefix('http://')}\r\n"
                     f"Cookie: roam_session={cookie}\r\nAccept: application/json\r\n").encode()

    def received(self) -> int:
        return sum(len(data) for data in self.upstream.received)

    def heads(self) -> list[bytes]:
        return self.upstream.heads


@pytest.fixture(scope="module")
def proxied() -> Iterator[Proxied]:
    upstream = RecordingUpstream()
    with upstream as base:
        systems = Systems([system("rec", [base])], [ServiceItem(code=ITEM, name="住房公积金提取")])
        with serve(gateway_app(systems, "h1"), proxy_headers=False) as url:
            cookie = httpx.get(url + "/test/login").cookies["roam_session"]
            yield Proxied(url, upstream, cookie)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@contextlib.asynccontextmanager
async def client(base: str, *, acr: str | None = "L2") -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client, logged in at ``acr`` (not logged in when None)."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        if acr is not None:
            response = await http.get("/test/login", params={"acr": acr})
            assert response.status_code == 200
            assert "roam_session" in http.cookies
        yield http


JSON = {"Accept": "application/json"}
NAV = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}


# -- passing through ----------------------------------------------------------------------

async def test_get_passes_through_with_forwarded_and_identity_headers(gateway: str) -> None:
    async with client(gateway) as http:
        http.cookies.set("s.echo.app_sid", "keep-me")  # the system's, as path mode names it
        http.cookies.set("s.other.app_sid", "another-systems")
        http.cookies.set("theme", "set-on-the-issuers-origin")
        http.cookies.set("roam_csrf", "gateway-only")
        response = await http.get(
            "/s/echo/api/items%20list?q=%E5%85%AC&n=1",
            headers={"X-Roam-Sub": "forged", "X-Roam-Acr": "L4",
                     "Authorization": "Bearer meant-for-the-gateway",
                     "X-Forwarded-Host": "evil.example", "X-Forwarded-Prefix": "/evil",
                     "X-Forwarded-For": "10.9.9.9", "X-Forwarded-Proto": "https",
                     "X_Roam_Sub": "underscored", "Connection": "x-private",
                     "X-Private": "hop", "Accept": "*/*"})
    assert response.status_code == 200
    seen = response.json()
    assert seen["method"] == "GET"
    assert seen["path"] == "/api/items%20list?q=%E5%85%AC&n=1"  # exactly as the client sent
    headers = {}
    for name, value in seen["headers"]:
        assert name not in headers, f"{name} sent twice"
        headers[name] = value
    host = gateway.removeprefix("http://")
    # the gateway's own, whatever the client claimed
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == host
    assert headers["x-forwarded-prefix"] == "/s/echo"
    assert not any("_" in name for name in headers)  # X_Roam_Sub dropped, as nginx does
    assert "authorization" not in headers
    assert "x-private" not in headers  # named by Connection: hop-by-hop
    # the gateway's cookies, another system's and any other never reach a system; the
    # system's own cookie does, under the name the system gave it
    assert headers["cookie"] == "app_sid=keep-me"
    # the connector's headers, and only them: the signature verifies as the system checks it
    verified = verify(headers, "GET", seen["path"], secret=SECRET, now=time.time(),
                      seen_nonces={})
    assert verified.sub == "c-0001"
    assert verified.acr == "L2"
    assert verified.claims == {"sub": "c-0001", "acr": "L2", "name": "张三"}
    # an upstream cannot set the gateway's cookie; its own passes
    assert len(response.headers.get_list("date")) == 1  # the gateway's, not a second one
    set_cookies = response.headers.get_list("set-cookie")
    assert [c for c in set_cookies if "app_sid" in c] == [
        "s.echo.app_sid=upstream-own; Path=/s/echo/; SameSite=lax"], \
        "path mode: the system's own name and path, never another system's"
    assert not any(c.startswith("roam_session=") for c in set_cookies)


async def test_a_pairwise_system_is_presented_a_subject_of_its_own(gateway: str) -> None:
    async with client(gateway) as http:
        seen = [(await http.get(f"/s/paired/p{i}")).json() for i in range(2)]
    subs = []
    for answer in seen:
        verified = verify(dict(answer["headers"]), "GET", answer["path"], secret=SECRET,
                          now=time.time(), seen_nonces={})
        assert verified.claims["sub"] == verified.sub
        subs.append(verified.sub)
    assert subs[0] == subs[1] != "c-0001"  # stable, and never the person's own


async def test_forwarded_host_is_where_the_gateway_serves_the_system(gateway: str) -> None:
    """In path mode X-Forwarded-Host is the issuer's host, never the Host a client sent (a
    system on its own host: tests/proxy/test_hosts.py)."""
    port = gateway.rpartition(":")[2]
    async with client(gateway) as http:
        in_path = (await http.get("/s/echo/page", headers={
            "Host": "evil.example", "X-Forwarded-Host": "evil.example"})).json()
    assert dict(in_path["headers"])["x-forwarded-host"] == f"127.0.0.1:{port}"


async def test_upstream_sees_its_own_host(gateway: str, upstreams: tuple[str, str, str]) -> None:
    async with client(gateway) as http:
        seen = (await http.get("/s/echo/x")).json()
    assert dict(seen["headers"])["host"] == upstreams[0].removeprefix("http://")


async def test_redirect_into_the_instance_is_rewritten_under_the_prefix(gateway: str) -> None:
    async with client(gateway) as http:
        response = await http.get("/s/echo/moved")
    assert response.status_code == 302
    assert response.headers["location"] == "/s/echo/landing?x=1"


async def test_dot_segments_are_refused(gateway: str) -> None:
    async with client(gateway) as http:
        response = await http.get("/s/echo/a/%2e%2e/secret", headers=JSON)
    assert response.status_code == 400


@pytest.mark.parametrize("path", [
    b"/s/rec/a/../secret", b"/s/rec/a/./secret", b"/s/rec/a/%2e%2e/secret",
    b"/s/rec/a/%2E%2e/secret", b"/s/rec/a/%252e%252e/secret",
    # Tomcat, Jetty and Spring read a dot segment with a path parameter as the segment
    b"/s/rec/a/..;/secret", b"/s/rec/a/..;x=1/secret", b"/s/rec/a/%2e%2e;/secret",
    b"/s/rec/.;/..;/secret", b"/s/rec/a/..%3b/secret", b"/s/rec/a/..%5csecret",
])
def test_dot_segments_never_reach_the_upstream(proxied: Proxied, path: bytes) -> None:
    """Raw bytes over a socket, so the gateway sees the path exactly as written."""
    before = proxied.received()
    answer = raw_exchange(proxied.url, proxied.head.replace(b"/s/rec/x", path) + b"\r\n")
    assert status_of(answer) == 400, answer[:300]
    assert b'"error":"invalid_request"' in answer
    assert proxied.received() == before
    page = raw_exchange(proxied.url, proxied.head.replace(b"/s/rec/x", path).replace(
        b"Accept: application/json", b"Accept: text/html") + b"\r\n")
    assert status_of(page) == 400
    assert '<code id="ref">' in page.decode()
    assert proxied.received() == before
    # names with dots are names: they pass
    fine = raw_exchange(proxied.url, proxied.head.replace(b"/s/rec/x", b"/s/rec/a/..b/...;c")
                        + b"\r\n")
    assert status_of(fine) == 200
    assert proxied.heads()[-1].startswith(b"GET /a/..b/...;c HTTP/1.1\r\n")


async def test_unknown_system_is_404(gateway: str) -> None:
    async with client(gateway) as http:
        response = await http.get("/s/nowhere/x", headers=JSON)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_a_system_root_without_its_slash_is_redirected(gateway: str) -> None:
    async with client(gateway) as http:
        response = await http.post("/s/echo?a=1", content=b"x")
    assert response.status_code == 307  # the method and body are kept
    assert response.headers["location"] == "/s/echo/?a=1"


async def test_other_methods_are_405_before_any_upstream(gateway: str) -> None:
    async with client(gateway) as http:
        response = await http.request("TRACE", "/s/echo/x", headers=JSON)
        allowed = await http.request("OPTIONS", "/s/echo/x", headers=JSON)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert "TRACE" not in response.headers["allow"]
    assert "PATCH" in response.headers["allow"]
    assert allowed.status_code == 200
    assert allowed.json()["method"] == "OPTIONS"


class Truncating:
    """An upstream that promises 100 000 bytes, sends 10 and closes the connection."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head and (chunk := conn.recv(65536)):
                    head += chunk
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: 100000\r\n\r\n0123456789")

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize("transport", ["aiohttp", "h1"])
async def test_a_truncated_upstream_body_is_one_log_line_and_a_cut_answer(
        transport: str, caplog: pytest.LogCaptureFixture) -> None:
    """The head was sent on already, so the client's answer ends short (it sees the body
    incomplete, never a whole-looking one); the gateway logs one line, no traceback."""
    upstream = Truncating()
    systems = Systems([system("cut", [upstream.url])], [ServiceItem(code=ITEM, name="事项")])
    try:
        with serve(gateway_app(systems, transport), proxy_headers=False) as url:
            async with client(url) as http:
                with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
                    await http.get("/s/cut/x", headers=JSON)
    finally:
        upstream.close()
    broken = [r for r in caplog.records if r.getMessage().startswith("proxy response broken")]
    assert len(broken) == 1
    assert getattr(broken[0], "system", None) == "cut"
    assert not [r for r in caplog.records if r.exc_info]  # no traceback anywhere
    assert "Exception in ASGI application" not in caplog.text


async def test_store_failure_is_503_with_retry_after(
        upstreams: tuple[str, str, str], caplog: pytest.LogCaptureFixture) -> None:
    """Redis down (nothing listens where the store points): 503 with Retry-After."""
    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/15", prefix="roam-test:")
    sessions = SessionManager(store, SessionSection(), issuer="http://127.0.0.1:8000")
    systems = Systems([system("echo", [upstreams[0]])], [ServiceItem(code=ITEM, name="事项")])
    proxy = Proxy(H1Upstream(), systems=systems, gate=Gate(sessions),
                  connectors={"echo": SignedHeader(secret=SECRET)},
                  health=local_health(systems).outliers)
    app = ProxyFirst(proxy=proxy, prefix=PREFIX, hosts={})
    cookie = {"Cookie": "roam_session=sid0.secret0"}
    try:
        with serve(app) as url:
            async with httpx.AsyncClient(base_url=url) as http:
                api = await http.get("/s/echo/x", headers={**JSON, **cookie})
                page = await http.get("/s/echo/x", headers={**NAV, **cookie})
    finally:
        await store.close()
    assert api.status_code == 503
    assert api.headers["retry-after"] == "5"
    assert api.json()["error"] == "temporarily_unavailable"
    # the log carries the ref shown, as a field of its own
    assert any(getattr(r, "ref", None) == api.json()["ref"] for r in caplog.records)
    assert page.status_code == 503
    assert page.headers["retry-after"] == "5"  # the page says when to try again too
    assert "服务暂时不可用" in page.text
    assert "secret0" not in caplog.text


class BrokenConnector:
    """A connector with a bug: the proxy must still answer, with a reference id."""

    type_name = "broken"

    def present(self, identity: Identity, outgoing: Any, route: Any, *, now: float) -> None:
        raise RuntimeError("connector bug")


async def test_an_unexpected_error_is_500_with_a_reference(
        upstreams: tuple[str, str, str], caplog: pytest.LogCaptureFixture) -> None:
    systems = Systems([system("echo", [upstreams[0]])], [ServiceItem(code=ITEM, name="事项")])
    app = gateway_app(systems, "h1")
    proxy = app.proxy
    assert isinstance(proxy, Proxy)
    proxy.connectors = {"echo": BrokenConnector()}
    with serve(app) as url:
        async with client(url) as http:
            api = await http.get("/s/echo/x", headers=JSON)
            page = await http.get("/s/echo/x", headers=NAV)
    assert api.status_code == 500
    ref = api.json()["ref"]
    assert api.json()["error"] == "server_error"
    assert any(getattr(r, "ref", None) == ref for r in caplog.records)
    assert "connector bug" in caplog.text  # the traceback is logged
    assert page.status_code == 500
    assert "系统错误" in page.text


# -- bodies ---------------------------------------------------------------------------------

async def test_large_bodies_stream_both_ways(gateway: str) -> None:
    body = bytes(range(256)) * (BIG // 256)
    async with client(gateway) as http:
        up = await http.post("/s/echo/upload", content=body)
        assert up.status_code == 200
        assert up.json()["length"] == len(body)
        assert up.json()["sha256"] == hashlib.sha256(body).hexdigest()

        async def chunked() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 256 * 1024):
                yield body[start:start + 256 * 1024]

        up = await http.put("/s/echo/upload", content=chunked())  # no Content-Length
        assert up.json()["length"] == len(body)
        assert up.json()["sha256"] == hashlib.sha256(body).hexdigest()

        down = await http.get("/s/echo/big")
        assert down.status_code == 200
        assert len(down.content) == BIG
        assert hashlib.sha256(down.content).hexdigest() == big_digest()


async def test_declared_body_over_the_limit_is_413(gateway: str) -> None:
    async with client(gateway) as http:
        response = await http.post("/s/echo/upload", content=b"x" * (7 * MiB), headers=JSON)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_streamed_body_over_the_limit_is_413(gateway: str) -> None:
    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(7):
            yield b"y" * MiB

    async with client(gateway) as http:
        try:
            response = await http.post("/s/echo/upload", content=chunked(), headers=JSON)
        except httpx.TransportError:  # the gateway may close before the client finishes
            return
    assert response.status_code == 413


# -- upstream failures ------------------------------------------------------------------------

async def test_slow_upstream_is_504_with_a_reference(gateway: str) -> None:
    async with client(gateway) as http:
        response = await http.get("/s/slow/slow", headers=JSON)
        assert response.status_code == 504
        assert response.json()["error"] == "gateway_timeout"
        assert len(response.json()["ref"]) == 12

        page = await http.get("/s/slow/slow", headers=NAV)
    assert page.status_code == 504
    assert page.headers["content-type"].startswith("text/html")
    assert "超时" in page.text


async def test_every_connection_busy_is_503_with_retry_after(
        upstreams: tuple[str, str, str]) -> None:
    """One connection allowed, held by a long answer: the next request waits the system's
    timeout for it, then gets 503 with Retry-After; once it is free, requests pass again."""
    systems = Systems([system("one", [upstreams[0]], timeout=0.5)],
                      [ServiceItem(code=ITEM, name="住房公积金提取")])
    with serve(gateway_app(systems, "h1", max_connections=1)) as url:
        async with client(url) as http:
            async with http.stream("GET", "/s/one/drip") as held:
                assert held.status_code == 200
                busy = await http.get("/s/one/x", headers=JSON)
                page = await http.get("/s/one/x", headers=NAV)
                assert (await held.aread()) == b"drop;" * 15  # untouched by the others
            after = await http.get("/s/one/x", headers=JSON)
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "5"
    assert busy.json()["error"] == "temporarily_unavailable"
    assert page.status_code == 503
    assert "繁忙" in page.text
    assert after.status_code == 200


async def test_dead_upstream_is_502_with_a_reference(gateway: str) -> None:
    async with client(gateway) as http:
        response = await http.get("/s/dead/x", headers=JSON)
        assert response.status_code == 502
        assert response.json()["error"] == "bad_gateway"
        ref = response.json()["ref"]
        assert ref

        page = await http.get("/s/dead/x", headers=NAV)
    assert page.status_code == 502
    assert "暂时无法访问" in page.text


async def test_get_is_retried_on_the_next_instance_post_is_not(gateway: str) -> None:
    async with client(gateway) as http:
        got = await http.get("/s/failover/x", headers=JSON)
        assert got.status_code == 200
        assert got.json()["instance"] == "b"
        put = await http.put("/s/failover/x", content=b"idempotent", headers=JSON)
        assert put.status_code == 200
        assert put.json()["length"] == len(b"idempotent")

        posted = await http.post("/s/failover/x", content=b"once", headers=JSON)
    assert posted.status_code == 502
    assert posted.json()["error"] == "bad_gateway"


async def test_load_is_spread_over_healthy_instances(gateway: str) -> None:
    async with client(gateway) as http:
        seen = [(await http.get("/s/spread/x")).json()["instance"] for _ in range(6)]
    assert seen.count("a") == 3
    assert seen.count("b") == 3


async def test_passive_health_skips_an_instance_after_failures(
    upstreams: tuple[str, str, str],
) -> None:
    a, _, dead = upstreams
    systems = Systems([system("pair", [dead, a])], [ServiceItem(code=ITEM, name="事项")])
    health = local_health(systems, passive_failures=2)

    def first(system_id: str, instances: Sequence[str]) -> str:
        return instances[0]

    with serve(gateway_app(systems, health=health.outliers, choose=first)) as url:
        async with client(url) as http:
            statuses = [(await http.post("/s/pair/x", content=b"1", headers=JSON)).status_code
                        for _ in range(3)]
            posted = await http.post("/s/pair/x", content=b"1", headers=JSON)
    # two POSTs failed on the dead instance (never retried) and took it out; then a
    assert statuses == [502, 502, 200]
    assert posted.json()["instance"] == "a"
    assert health.availability("pair", dead) == "down"
    state, _ = await health.shared.read("pair", dead)
    assert (state.cause, state.reason) == (
        "passive", "2 failed requests in a row, the last: connect error")


async def test_a_system_with_no_instance_left_sends_people_a_level_up(
    upstreams: tuple[str, str, str],
) -> None:
    """Every instance out: a person goes on through /go for the system's item, in its
    region (which falls back a level and says so); a program gets 503."""
    a, _, _ = upstreams
    systems = Systems([system("solo", [a])], [ServiceItem(code=ITEM, name="事项")])
    health = local_health(systems)
    await health.shared.drain("solo", a, by="operator")
    failover = Failover(systems=systems, pages=Pages(), issuer="https://sso.example",
                        health=health)
    with serve(gateway_app(systems, health=health.outliers, failover=failover)) as url:
        async with client(url) as http:
            page = await http.get("/s/solo/x", headers=NAV)
            api = await http.get("/s/solo/x", headers=JSON)
    assert page.status_code == 303
    assert page.headers["location"] == f"https://sso.example/go/{ITEM}?region=430100"
    assert api.status_code == 503
    assert api.headers["retry-after"] == "5"
    assert api.json()["error"] == "temporarily_unavailable"


# -- sessions and levels ----------------------------------------------------------------------

async def test_no_session_xhr_gets_401_json(gateway: str) -> None:
    async with client(gateway, acr=None) as http:
        response = await http.get("/s/echo/api", headers={**JSON,
                                                           "X-Requested-With": "XMLHttpRequest"})
        fetch = await http.get("/s/echo/api", headers={"Accept": "text/html",
                                                       "Sec-Fetch-Mode": "cors"})
    assert response.status_code == 401
    assert response.json()["error"] == "login_required"
    assert "www-authenticate" in response.headers
    assert "location" not in response.headers
    assert fetch.status_code == 401


async def test_no_session_navigation_goes_to_login_with_the_deep_link(gateway: str) -> None:
    async with client(gateway, acr=None) as http:
        response = await http.get("/s/echo/page/detail?id=7&tab=a", headers=NAV)
        legacy = await http.get("/s/echo/page", headers={"Accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["location"] == (
        "/login?next=%2Fs%2Fecho%2Fpage%2Fdetail%3Fid%3D7%26tab%3Da")
    assert legacy.status_code == 303


async def test_session_below_min_acr_is_stepped_up(gateway: str) -> None:
    async with client(gateway, acr="L2") as http:
        api = await http.get("/s/strict/x", headers=JSON)
        page = await http.get("/s/strict/x?a=1", headers=NAV)
    assert api.status_code == 403
    assert api.json()["error"] == "insufficient_user_authentication"
    assert page.status_code == 303
    assert page.headers["location"] == "/stepup?next=%2Fs%2Fstrict%2Fx%3Fa%3D1&acr=L3"

    async with client(gateway, acr="L3") as http:
        assert (await http.get("/s/strict/x", headers=JSON)).status_code == 200


# -- header rules, without servers -----------------------------------------

def test_hop_by_hop_headers_are_removed() -> None:
    headers = [("Connection", "keep-alive, X-Secret"), ("Keep-Alive", "timeout=5"),
               ("X-Secret", "1"), ("TE", "trailers"), ("Trailer", "X"),
               ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"),
               ("Proxy-Authorization", "Basic x"), ("Proxy-Foo", "1"),
               ("Accept", "*/*")]
    assert without_hop_by_hop(headers) == [("Accept", "*/*")]


def test_cookie_rules() -> None:
    cookies = [("Cookie", "roam_session=a.b; app=1;  roam_csrf=z"), ("cookie", "roam_csrf=y")]
    assert without_cookies(cookies, {"roam_session", "roam_csrf"}) == [("Cookie", "app=1")]
    set_cookies = [("Set-Cookie", "roam_session=x; Path=/"), ("Set-Cookie", "app=2"),
                   ("Content-Type", "text/plain")]
    assert without_set_cookies(set_cookies, {"roam_session"}) == set_cookies[1:]


@pytest.mark.parametrize(("sent", "path_mode", "host_mode"), [
    ("a=1", "s.gjj.a=1", "a=1"),  # no Path: the browser's default is the page's directory
    ("a=1; Path=/; Domain=roam.test; HttpOnly", "s.gjj.a=1; Path=/s/gjj/; HttpOnly",
     "a=1; Path=/; HttpOnly"),
    ("a=1; path=/app; DOMAIN=.gov.cn; Secure", "s.gjj.a=1; Path=/s/gjj/app; Secure",
     "a=1; path=/app; Secure"),
    ("__Host-x=1; Path=/; Secure", "s.gjj.__Host-x=1; Path=/s/gjj/; Secure",
     "__Host-x=1; Path=/; Secure"),
    ("a=1; Path=relative", "s.gjj.a=1; Path=/s/gjj/", "a=1; Path=relative"),
])
def test_a_systems_set_cookie_is_kept_to_that_system(sent: str, path_mode: str,
                                                     host_mode: str) -> None:
    assert scoped_set_cookie(sent, name_prefix="s.gjj.", path_prefix="/s/gjj") == path_mode
    assert scoped_set_cookie(sent) == host_mode  # its own host: only the Domain goes


@pytest.mark.parametrize(("sent", "kept"), [
    ("JSESSIONID=planted; a=1; JSESSIONID=own", "a=1"),  # which one is the system's?
    ("a=1; b=2", "a=1; b=2"),
    ("x=1; x=1", None),
])
def test_a_cookie_name_sent_twice_reaches_no_system(sent: str, kept: str | None) -> None:
    for prefix in ("", "s.gjj."):  # host mode, path mode
        raw = [(b"cookie", "; ".join(f"{prefix}{p}" for p in sent.split("; ")).encode())]
        out = upstream_request_headers(raw, cookie_names=set(), client=None, proto="https",
                                       host="gw", prefix="/s/gjj" if prefix else "",
                                       cookie_prefix=prefix)
        assert [v for k, v in out if k == "cookie"] == ([kept] if kept else [])


def test_path_mode_forwards_only_the_systems_own_cookies() -> None:
    raw = [(b"cookie", b"roam_session=a.b; s.gjj.JSESSIONID=1; s.sb.JSESSIONID=2; theme=x"),
           (b"cookie", b"s.gjj.lang=zh")]
    out = upstream_request_headers(raw, cookie_names={"roam_session"}, client=None,
                                   proto="https", host="gw", prefix="/s/gjj",
                                   cookie_prefix=path_cookie_prefix("gjj"))
    assert [v for k, v in out if k == "cookie"] == ["JSESSIONID=1", "lang=zh"]


def test_what_a_client_claims_in_other_forms_never_reaches_a_system() -> None:
    claimed = [("Forwarded", "for=6.6.6.6;host=evil;proto=http"), ("X-Real-IP", "6.6.6.6"),
               ("X-Forwarded-Port", "1"), ("X-Original-URL", "/admin"),
               ("X-Rewrite-URL", "/admin"), ("X-HTTP-Method-Override", "DELETE"),
               ("True-Client-IP", "6.6.6.6"), ("Accept", "*/*")]
    raw = [(k.lower().encode(), v.encode()) for k, v in claimed]
    out = upstream_request_headers(raw, cookie_names=set(), client="127.0.0.1",
                                   proto="https", host="gw", prefix="")
    assert [k for k, _ in out] == ["accept", "X-Forwarded-For", "X-Forwarded-Proto",
                                   "X-Forwarded-Host"]
    assert [k for k, _ in forwarded_headers(claimed, client=None, proto="https", host="gw",
                                            prefix="")] == ["Accept", "X-Forwarded-Proto",
                                                            "X-Forwarded-Host"]


def test_forwarded_headers_replace_what_a_client_claims() -> None:
    out = forwarded_headers([("X-Forwarded-Proto", "https"), ("X-Forwarded-Prefix", "/x"),
                             ("X-Forwarded-For", "10.0.0.9"), ("x-forwarded-host", "evil")],
                            client="127.0.0.1", proto="http", host="gw.example",
                            prefix="/s/echo")
    assert out == [("X-Forwarded-For", "127.0.0.1"), ("X-Forwarded-Proto", "http"),
                   ("X-Forwarded-Host", "gw.example"), ("X-Forwarded-Prefix", "/s/echo")]
    assert forwarded_headers([("X-Forwarded-For", "10.0.0.9")], client=None, proto="https",
                             host="", prefix="") == [("X-Forwarded-Proto", "https")]


def test_underscored_header_names_are_dropped() -> None:
    assert without_underscores([("X_Roam_Sub", "forged"), ("X-Roam-Sub", "x"),
                                ("accept_language", "zh"), ("Accept", "*/*")]) == [
        ("X-Roam-Sub", "x"), ("Accept", "*/*")]


def _composed(headers: list[tuple[str, str]], *, client: str | None,
              prefix: str) -> list[tuple[str, str]]:
    """The request-side rules one by one: what upstream_request_headers must equal."""
    pairs = [(k, v) for k, v in without_hop_by_hop(headers) if k not in ("host", "expect")]
    pairs = without_cookies(without_underscores(pairs), {"roam_session", "roam_csrf"})
    return forwarded_headers(pairs, client=client, proto="https", host="gw.example",
                             prefix=prefix)


@pytest.mark.parametrize("headers", [
    [],
    [("host", "gw.example"), ("accept", "*/*"), ("cookie", "roam_session=a.b; app=1")],
    [("connection", "keep-alive, x-secret, x-forwarded-for"), ("x-secret", "1"),
     ("x-forwarded-for", "10.0.0.1"), ("keep-alive", "5"), ("te", "trailers"),
     ("proxy-authorization", "Basic x"), ("expect", "100-continue"), ("accept", "a")],
    [("x-roam-sub", "forged"), ("X-ROAM-ACR", "L4"), ("authorization", "Bearer stolen"),
     ("x-forwarded-for", " 10.0.0.9 "), ("x-forwarded-for", ""), ("x-forwarded-proto", "http"),
     ("x-forwarded-host", "evil"), ("x-forwarded-prefix", "/x"), ("cookie", "roam_csrf=z"),
     ("cookie", "app=2;  other=3"), ("content-type", "text/plain"), ("transfer-encoding", "c")],
    [("x_roam_sub", "forged"), ("x-roam_acr", "L4"), ("accept", "a"), ("x_forwarded_for", "1")],
])
@pytest.mark.parametrize(("client", "prefix"), [("127.0.0.1", "/s/echo"), (None, "")])
def test_one_pass_request_headers_equal_the_rules_composed(
        headers: list[tuple[str, str]], client: str | None, prefix: str) -> None:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers]  # ASGI: lower-case names
    lowered = [(k.lower(), v) for k, v in headers]
    fast = upstream_request_headers(raw, cookie_names={"roam_session", "roam_csrf"},
                                    client=client, proto="https", host="gw.example",
                                    prefix=prefix)
    assert fast == _composed(lowered, client=client, prefix=prefix)


@pytest.mark.parametrize("headers", [
    [],
    [("Content-Type", "text/html"), ("Content-Length", "12"), ("Set-Cookie", "app=1"),
     ("Date", "Fri, 27 Nov 2026 09:00:00 GMT"), ("Server", "legacy/1.0"),
     ("Set-Cookie", "roam_session=planted; Path=/"), ("Location", "http://up:9/a?b=1")],
    [("Connection", "close, X-Up-Secret"), ("X-Up-Secret", "1"), ("Keep-Alive", "5"),
     ("Transfer-Encoding", "chunked"), ("Proxy-Authenticate", "x"), ("location", "http://up:9"),
     ("LOCATION", "https://elsewhere/x"), ("set-cookie", "roam_csrf=z; Secure")],
])
@pytest.mark.parametrize("prefix", ["/s/echo", ""])
def test_one_pass_response_headers_equal_the_rules_composed(
        headers: list[tuple[str, str]], prefix: str) -> None:
    names = {"roam_session", "roam_csrf"}
    expected = []
    for name, value in without_set_cookies(without_hop_by_hop(headers), names):
        if name.lower() == "date":
            continue  # the gateway's server sends its own
        if name.lower() == "location" and (value == "http://up:9"
                                           or value.startswith("http://up:9/")):
            value = prefix + (value[len("http://up:9"):] or "/")
        expected.append((name.lower().encode(), value.encode()))
    assert client_response_headers(headers, cookie_names=names, base="http://up:9",
                                   prefix=prefix) == expected
