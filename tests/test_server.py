"""gateway/server.py: the uvicorn settings `roam serve` and the benches run with."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator

import httpx
from packaging.specifiers import SpecifierSet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.server import HoldingTransport, TurnWritesHttpToolsProtocol, uvicorn_config
from tests.support.pins import installed_within_pin
from tests.support.servers import free_port, serve, serve_config


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
