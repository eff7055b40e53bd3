"""The upstream of ``bench/proxy.py``: a tiny HTTP server answering a fixed 1 KiB body.

Run by the bench as ``python -m bench._proxy_upstream --port N [--kind aiohttp|asgi]``; it
serves until terminated. Every path answers ``200`` with the same 1 KiB ``text/plain``
body, except ``GET /_headers``, which answers the request's header names as JSON (the bench
asks it once, through the gateway, to check that the signed-header connector ran).

Two implementations, so the faster can be chosen by measurement (``--kind``):

* ``aiohttp``: ``aiohttp.web`` with its C HTTP parser (the default: the faster here);
* ``asgi``: a bare ASGI callable under uvicorn (h11 unless httptools is installed).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

BODY = (b"Roam proxy bench upstream. " * 40)[:1023] + b"\n"  # exactly 1 KiB
assert len(BODY) == 1024
HEADERS_PATH = "/_headers"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def serve_aiohttp(port: int) -> None:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        if request.path == HEADERS_PATH:
            return web.Response(body=json.dumps(sorted(k.lower() for k in request.headers)),
                                content_type="application/json")
        return web.Response(body=BODY, content_type="text/plain")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":  # lifespan: nothing to set up
        while (message := await receive())["type"] != "lifespan.shutdown":
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == HEADERS_PATH:
        body = json.dumps(sorted(k.decode("latin-1").lower()
                                 for k, _ in scope["headers"])).encode()
        kind = b"application/json"
    else:
        body, kind = BODY, b"text/plain"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", kind),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def serve_asgi(port: int) -> None:
    import uvicorn

    uvicorn.run(asgi_app, host="127.0.0.1", port=port, log_level="warning",
                access_log=False, lifespan="on")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kind", choices=("aiohttp", "asgi"), default="aiohttp")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.kind == "aiohttp":
        serve_aiohttp(args.port)
    else:
        serve_asgi(args.port)


if __name__ == "__main__":
    main()
