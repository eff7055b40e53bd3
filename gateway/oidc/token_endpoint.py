"""``/token``: authlib's grants behind a Starlette endpoint (RFC 6749 §5 responses)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from gateway.oidc.bridge import (
    HttpRequest,
    check_basic_credentials,
    form_params,
    json_reply,
    published_url,
)
from gateway.oidc.server import RoamAuthorizationServer

__all__ = ["TokenEndpoint"]

log = logging.getLogger("roam.token")


class TokenEndpoint:
    def __init__(self, server: RoamAuthorizationServer, *, issuer: str) -> None:
        self.server = server
        self.issuer = issuer

    async def handle(self, request: Request) -> Response:
        check_basic_credentials(request.headers)
        pairs = await form_params(request)
        oauth_request = HttpRequest("POST", published_url(self.issuer, request), request.headers,
                                    form=pairs)
        reply = await self.server.token_response(oauth_request)
        if reply.status != 200:
            log.info("token error", extra={"status": reply.status,
                                           "error": reply.body.get("error"),
                                           "grant_type": oauth_request.form.get("grant_type")})
        return json_reply(reply)
