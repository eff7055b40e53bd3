"""How the gateway runs under uvicorn: one set of options for ``roam serve`` and the benches,
so what ``bench/`` measures is what production runs."""

from __future__ import annotations

import importlib.util

import uvicorn
from starlette.types import ASGIApp

# Both are dependencies (uvloop not on Windows): the fastest loop and HTTP parser measured.
LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
HTTP = "httptools"


def uvicorn_config(app: ASGIApp, *, host: str, port: int, access_log: bool = True,
                   log_level: str = "info") -> uvicorn.Config:
    """uvloop and httptools, the app's own lifespan. ``X-Forwarded-*``
    from clients are not trusted (``proxy_headers=False``): the proxy sets its own."""
    return uvicorn.Config(app, host=host, port=port, loop=LOOP, http=HTTP, lifespan="on",
                          proxy_headers=False, access_log=access_log, log_level=log_level)
