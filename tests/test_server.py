"""gateway/server.py: the uvicorn settings `roam serve` and the benches run with."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from packaging.specifiers import SpecifierSet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.proxy.dispatch import HeadLimits
from gateway.server import HoldingTransport, TurnWritesHttpToolsProtocol, uvicorn_config
from tests.proxy.test_proxy import Proxied, proxied, status_of
from tests.support.pins import installed_within_pin
from tests.support.servers import free_port, raw_exchange, serve, serve_config

ROOT = Path(__file__).resolve().parent.parent


async def whoami(request: Request) -> Response:
    return JSONResponse({"client": request.client.host if request.client else None,
                         "scheme": request.url.scheme})


def test_clients_cannot_claim_another_address_or_scheme() -> None:
    """proxy_headers is off: X-Forwarded-* from a client (even on loopback) change nothing;
    the proxy computes its own for the systems behind it."""
    app = Starlette(routes=[Route("/", whoami)])
    config = uvicorn_config(app, host="127.0.0.1", port=free_port(), access_log=False,
                            log_level="warning")
    with serve_config(config) as url:
        response = httpx.get(url + "/", headers={"X-Forwarded-For": "10.9.9.9",
                                                 "X-Forwarded-Proto": "https"})
    assert response.json() == {"client": "127.0.0.1", "scheme": "http"}
    assert "server" not in response.headers  # the software is not advertised
    assert len(response.headers.get_list("date")) == 1


def test_runs_on_uvloop_and_httptools() -> None:
    config = uvicorn_config(Starlette(), host="127.0.0.1", port=free_port())
    config.load()
    assert config.loop == "uvloop"
    assert config.http_protocol_class is TurnWritesHttpToolsProtocol
    limits = HeadLimits(line=1024, size=2048, count=16)
    config = uvicorn_config(Starlette(), host="127.0.0.1", port=free_port(), limits=limits)
    config.load()
    assert issubclass(config.http_protocol_class, TurnWritesHttpToolsProtocol)
    assert config.http_protocol_class.limits == limits


def test_a_streamed_answer_still_streams() -> None:
    """Held writes leave at the end of the loop turn that wrote them: the first chunk
    must reach the client while the app still waits before sending the second."""
    got_first = threading.Event()

    async def stream() -> AsyncIterator[bytes]:
        yield b"first;"
        for _ in range(500):  # up to 5 s for the client to see the first chunk
            if got_first.is_set():
                break
            await asyncio.sleep(0.01)
        yield b"seen" if got_first.is_set() else b"held"

    async def endpoint(request: Request) -> Response:
        return StreamingResponse(stream())

    app = Starlette(routes=[Route("/", endpoint)])
    with serve(app) as url, httpx.stream("GET", url + "/") as response:
        chunks = response.iter_raw()
        assert next(chunks) == b"first;"
        got_first.set()
        assert b"".join(chunks) == b"seen"


def test_whole_answers_and_keep_alive_across_requests() -> None:
    """Many answers on one kept-alive connection, each complete and in order; a
    ``Connection: close`` answer still arrives whole before the close."""
    async def echo(request: Request) -> Response:
        return PlainTextResponse(request.query_params["n"] * 1000)

    app = Starlette(routes=[Route("/", echo)])
    with serve(app) as url, httpx.Client(base_url=url) as http:
        for n in "abcdefghij":
            assert http.get("/", params={"n": n}).text == n * 1000
        last = http.get("/", params={"n": "z"}, headers={"Connection": "close"})
        assert last.text == "z" * 1000


async def test_the_uvicorn_internals_server_py_builds_on_have_not_moved() -> None:
    """gateway/server.py subclasses uvicorn's private ``HttpToolsProtocol`` and swaps the
    transport it keeps. pyproject.toml holds uvicorn to the release line this was tested
    with; should another release move these internals, this fails, loudly, before any
    answer is held or lost."""
    installed, declared = installed_within_pin("uvicorn")
    assert SpecifierSet(declared).contains(installed), (installed, declared)
    assert declared.count("<"), "a private API is pinned from above too"
    assert list(inspect.signature(HttpToolsProtocol.connection_made).parameters) == [
        "self", "transport"]
    source = inspect.getsource(httptools_impl)
    assert "self.transport = transport" in source  # the protocol keeps what it was given
    assert source.count("self.transport.write(") >= 2  # and answers go out through it
    # a head is open from a new scope to its method (the head limits read these)
    assert "self.scope = {" in inspect.getsource(HttpToolsProtocol.on_message_begin)
    assert 'self.scope["method"] =' in inspect.getsource(HttpToolsProtocol.on_headers_complete)
    assert "self.cycle.more_body = False" in inspect.getsource(
        HttpToolsProtocol.on_message_complete)
    config = uvicorn_config(Starlette(), host="127.0.0.1", port=free_port())
    config.load()
    protocol = TurnWritesHttpToolsProtocol(config=config, server_state=ServerState(),
                                           app_state={})

    class Transport:
        def get_extra_info(self, name: str) -> object:
            return None

        def is_closing(self) -> bool:
            return False

    protocol.connection_made(Transport())  # type: ignore[arg-type]
    assert isinstance(protocol.transport, HoldingTransport)


# -- request heads over the limits: refused by the server, never forwarded ----------------

__all__ = ["proxied"]  # the fixture: the proxy served as roam serve serves it

def test_a_head_within_the_limits_is_forwarded(proxied: Proxied) -> None:
    """The control: the same request, with headers as large as allowed, goes through."""
    before = proxied.received()
    lines = b"".join(b"X-H%d: %b\r\n" % (n, b"v" * 7000) for n in range(3))  # 21 KiB
    answer = raw_exchange(proxied.url, proxied.head + lines + b"\r\n")
    assert status_of(answer) == 200, answer[:300]
    assert proxied.received() > before + 21000
    answer = raw_exchange(proxied.url, proxied.head + b"X-H: 1\r\n" * 97 + b"\r\n")
    assert status_of(answer) == 200, answer[:300]  # 100 lines in all


@pytest.mark.parametrize(("extra", "status"), [
    (b"X-Big: " + b"a" * (16 * 1024 * 1024) + b"\r\n", 431),  # 16 MiB: read no further
    (b"X-H: 1\r\n" * 100_000, 431),  # 100,000 header lines
    (b"X-Big: " + b"a" * 8190 + b"\r\n", 431),  # one line over 8 KiB (nginx's 8k)
    (b"".join(b"X-H%d: %b\r\n" % (n, b"v" * 7000) for n in range(5)), 431),  # 35 KiB in all
    (b"X-H: 1\r\n" * 98, 431),  # the 101st line (with Host, Cookie and Accept)
])
def test_a_head_over_the_limits_is_431_and_never_forwarded(
        proxied: Proxied, extra: bytes, status: int) -> None:
    before = proxied.received()
    answer = raw_exchange(proxied.url, proxied.head + extra + b"\r\n")
    assert status_of(answer) == status, answer[:300]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {"error": "request_header_too_large", "ref": json.loads(body)["ref"]}
    assert proxied.received() == before  # the upstream saw nothing
    # and the gateway still serves everyone else
    assert status_of(raw_exchange(proxied.url, proxied.head + b"\r\n")) == 200


def test_a_request_line_over_the_limit_is_414(proxied: Proxied) -> None:
    before = proxied.received()
    answer = raw_exchange(proxied.url, proxied.head.replace(
        b"/s/rec/x", b"/s/rec/" + b"a" * 9000) + b"\r\n")
    assert status_of(answer) == 414, answer[:300]
    assert proxied.received() == before


def test_a_person_gets_the_page_with_a_reference(proxied: Proxied) -> None:
    answer = raw_exchange(proxied.url, proxied.head.replace(
        b"Accept: application/json", b"Accept: text/html\r\nSec-Fetch-Mode: navigate")
        + b"X-H: 1\r\n" * 200 + b"\r\n")
    assert status_of(answer) == 431
    assert "请求头过大" in answer.decode()
    assert '<code id="ref">' in answer.decode()


def test_the_limits_are_the_configured_ones() -> None:
    """uvicorn_config(limits=…) is what ``roam serve`` passes from [gateway]: a head that
    stays open past ``size`` bytes or ``count`` lines is refused by the server itself,
    even before an app that checks nothing."""
    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/", hello)])
    request = b"GET / HTTP/1.1\r\nHost: x\r\n"
    ten_kib = request + b"A: " + b"x" * 10240 + b"\r\n\r\n"
    many = request + b"A: 1\r\n" * 400 + b"\r\n"  # 2.8 KiB
    with serve(app, log_level="warning") as url:  # the defaults: 32 KiB, 100 lines
        assert status_of(raw_exchange(url, ten_kib)) == 200
        # the server stops these itself: the app, which checks nothing, never sees them
        huge = request + b"A: " + b"x" * (16 * 1024 * 1024) + b"\r\n\r\n"
        assert status_of(raw_exchange(url, huge)) == 431
        assert status_of(raw_exchange(url, request + b"A: 1\r\n" * 100_000 + b"\r\n")) == 431
    limits = HeadLimits(line=1024, size=2048, count=16)
    config = uvicorn_config(app, host="127.0.0.1", port=free_port(), access_log=False,
                            log_level="warning", limits=limits)
    with serve_config(config) as url:
        assert status_of(raw_exchange(url, request + b"A: 1\r\n" * 14 + b"\r\n")) == 200
        assert status_of(raw_exchange(url, ten_kib)) == 431
        assert status_of(raw_exchange(url, many)) == 431


def test_objects_made_before_serving_leave_the_collectors_generations() -> None:
    """``roam serve`` freezes what start-up made (in a process of its own here: freezing
    this test process would keep its garbage cycles for the rest of the run)."""
    script = ("import gc\nfrom gateway.app import create_app\nfrom gateway.config import "
              "load_config\nfrom gateway.server import freeze_startup_objects\n"
              "app = create_app(load_config('config/roam.toml', env={}))\n"
              "assert gc.get_freeze_count() == 0\nfreeze_startup_objects()\n"
              "print(gc.get_freeze_count(), gc.get_count()[0])\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,  # noqa: S603
                          check=True, cwd=ROOT, timeout=120)
    frozen, young = map(int, done.stdout.split())
    assert frozen > 10_000  # modules, config, the app
    assert young < 100  # collected first: nothing young was frozen with it
