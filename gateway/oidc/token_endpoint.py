"""``/token``: authlib's grants behind a Starlette endpoint (RFC 6749 §5 responses)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from gateway.metrics.recorder import Metrics
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
    def __init__(self, server: RoamAuthorizationServer, *, issuer: str,
                 metrics: Metrics | None = None) -> None:
        self.server = server
        self.issuer = issuer
        self.metrics = metrics or Metrics()

    async def handle(self, request: Request) -> Response:
        check_basic_credentials(request.headers)
        pairs = await form_params(request)
        oauth_request = HttpRequest("POST", published_url(self.issuer, request), request.headers,
                                    form=pairs)
        reply = await self.server.token_response(oauth_request)
        grant_type = oauth_request.form.get("grant_type") or ""
        if reply.status != 200:
            error = reply.body.get("error")
            self.metrics.token_error(grant_type, error if isinstance(error, str) else "")
            log.info("token error", extra={"status": reply.status, "error": error,
                                           "grant_type": grant_type})
            return json_reply(reply)
        self.metrics.token_issued(grant_type)
        identity = oauth_request.work.channel_identity
        if identity is not None:  # a mini-program login (the channel-code grant)
            self.metrics.login(oauth_request.form.get("channel") or "", "miniprogram",
                               identity.acr)
        return json_reply(reply)
