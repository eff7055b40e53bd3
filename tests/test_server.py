"""gateway/server.py: the uvicorn settings `roam serve` and the benches run with."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.server import uvicorn_config
from tests.support.servers import free_port, serve_config


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
        seen = httpx.get(url + "/", headers={"X-Forwarded-For": "10.9.9.9",
                                             "X-Forwarded-Proto": "https"}).json()
    assert seen == {"client": "127.0.0.1", "scheme": "http"}


def test_runs_on_uvloop_and_httptools() -> None:
    config = uvicorn_config(Starlette(), host="127.0.0.1", port=free_port())
    config.load()
    assert config.loop == "uvloop"
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
