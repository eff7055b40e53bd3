"""uvicorn's access log, as ``roam serve`` runs it, never carries a query string."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway import access_log
from tests.support.servers import serve


def test_query_strings_stay_out_of_the_access_log(caplog: pytest.LogCaptureFixture) -> None:
    async def validate(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/cas/serviceValidate", validate)])
    access_log.install()
    access_log.install()  # idempotent: one filter
    assert sum(isinstance(f, access_log.WithoutQuery)
               for f in logging.getLogger(access_log.ACCESS_LOGGER).filters) == 1
    with caplog.at_level(logging.INFO, logger=access_log.ACCESS_LOGGER), \
            serve(app, log_level="info", access_log=True, log_config=None) as url:
        answer = httpx.get(f"{url}/cas/serviceValidate",
                           params={"service": "https://x.example", "ticket": "ST-secret42"})
        plain = httpx.get(f"{url}/cas/serviceValidate")
    assert answer.status_code == plain.status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == access_log.ACCESS_LOGGER]
    assert len(lines) == 2, lines
    assert all("ST-secret42" not in line and "x.example" not in line for line in lines)
    assert '"GET /cas/serviceValidate?… HTTP/1.1" 200' in lines[0]
    assert '"GET /cas/serviceValidate HTTP/1.1" 200' in lines[1]
