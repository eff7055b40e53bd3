"""``/token``: authlib's grants behind a Starlette endpoint (RFC 6749 §5 responses).

Every answer is an audit event: ``token.issue`` (a code, a channel code, a token
exchange) or ``token.refresh``, with the grant type, the client, the subject when the
grant is known, and the error when it failed. Never a token.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.audit import audit_event
from gateway.metrics.recorder import Metrics
from gateway.oidc.bridge import (
    HttpRequest,
    Reply,
    check_basic_credentials,
    form_params,
    json_reply,
    published_url,
)
from gateway.oidc.grant import Grant
from gateway.oidc.server import RoamAuthorizationServer, claimed_client_id

__all__ = ["TokenEndpoint", "audit_token"]


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
        audit_token(oauth_request, reply)
        grant_type = oauth_request.form.get("grant_type") or ""
        if reply.status != 200:
            error = reply.body.get("error")
            self.metrics.token_error(grant_type, error if isinstance(error, str) else "")
            return json_reply(reply)
        self.metrics.token_issued(grant_type)
        identity = oauth_request.work.channel_identity
        if identity is not None:  # a mini-program login (the channel-code grant)
            self.metrics.login(oauth_request.form.get("channel") or "", "miniprogram",
                               identity.acr)
        return json_reply(reply)


def audit_token(request: HttpRequest, reply: Reply) -> None:
    """The audit event of one answer at ``/token``."""
    grant_type = request.form.get("grant_type")
    action = "token.refresh" if grant_type == "refresh_token" else "token.issue"
    user = getattr(request, "user", None)
    grant = user if isinstance(user, Grant) else None
    client = getattr(request, "client", None)
    client_id = getattr(client, "client_id", None) or claimed_client_id(request)
    subject = grant.identity.subject if grant is not None else None
    sid = grant.sid if grant is not None else None
    body = reply.body if isinstance(reply.body, dict) else {}
    if reply.status < 400:
        audit_event(action, "success", subject=subject, client=client_id,
                    grant_type=grant_type, sid=sid, scope=body.get("scope"),
                    token_type=body.get("token_type"), refresh="refresh_token" in body,
                    id_token_issued="id_token" in body,
                    reused=request.work.reused)  # a retry within the reuse window
    else:
        audit_event(action, "error" if reply.status >= 500 else "failure", subject=subject,
                    client=client_id, grant_type=grant_type, sid=sid, status=reply.status,
                    error=body.get("error"), description=body.get("error_description"))
