"""``/userinfo`` (OIDC Core §5.3): the claims the token's scopes and the client allow."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.oidc.bearer import BearerTokens, bearer_error

__all__ = ["UserinfoEndpoint"]


class UserinfoEndpoint:
    def __init__(self, bearer: BearerTokens) -> None:
        self.bearer = bearer

    async def handle(self, request: Request) -> Response:
        claims, client, grant = await self.bearer.check(request, form_token=True)
        scopes = str(claims.get("scope", "")).split()
        if "openid" not in scopes:
            raise bearer_error("insufficient_scope", "The token lacks the openid scope.", 403)
        # the sub the token carries: its client's view (gateway.oidc.subjects), which the
        # token's check compared with the grant's already
        body: dict[str, Any] = {"sub": claims["sub"]}
        # A client's approval is its clearance: what it is approved for comes in full, an
        # identifier it is not approved for only masked inside ``agent`` (and then no birth
        # date), by the same rule as every connector's release.
        body.update(grant.identity.release(client.released_claims(scopes) - {"sub"},
                                           privileged=True))
        return JSONResponse(body, headers={"Cache-Control": "no-store"})
