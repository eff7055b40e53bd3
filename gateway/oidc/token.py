"""``/token``: authlib's grants behind a Starlette endpoint (RFC 6749 §5 responses)."""

from __future__ import annotations

import logging

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import ProtocolError
from gateway.oidc.server import HttpRequest, Reply, RoamAuthorizationServer

log = logging.getLogger("roam.token")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenEndpoint:
    def __init__(self, server: RoamAuthorizationServer) -> None:
        self.server = server

    async def handle(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise ProtocolError("invalid_request",
                                "The token request must be application/x-www-form-urlencoded.")
        form = await request.form()
        pairs = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        oauth_request = HttpRequest("POST", str(request.url), request.headers, form=pairs)
        reply: Reply = await anyio.to_thread.run_sync(
            self.server.create_token_response, oauth_request)
        headers = {**dict(reply.headers), **NO_STORE}
        headers.pop("Content-Type", None)
        if reply.status != 200:
            log.info("token error status=%s error=%s grant_type=%s", reply.status,
                     reply.body.get("error"), form.get("grant_type"))
        return JSONResponse(reply.body, status_code=reply.status, headers=headers)
