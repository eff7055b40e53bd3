"""``/userinfo`` (OIDC Core §5.3): the claims the token's scopes and the client allow."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import ProtocolError
from gateway.keys import KeyRing
from gateway.oidc.active import ActiveTokens
from gateway.oidc.bearer import BearerTokens, bearer_error
from gateway.oidc.clients import ClientRegistry

__all__ = ["UserinfoEndpoint"]


class UserinfoEndpoint:
    def __init__(self, *, keys: KeyRing, clients: ClientRegistry, active: ActiveTokens,
                 issuer: str) -> None:
        self.bearer = BearerTokens(keys=keys, clients=clients, active=active, issuer=issuer)

    async def _token(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        if request.method == "POST" and request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            form = await request.form()
            token = form.get("access_token")
            if isinstance(token, str) and token:
                return token
        raise ProtocolError("invalid_request", "A bearer access token is required.",
                            status=401, headers={"WWW-Authenticate": 'Bearer realm="roam"'})

    async def handle(self, request: Request) -> Response:
        claims, client, grant = await self.bearer.check(await self._token(request))
        scopes = str(claims.get("scope", "")).split()
        if "openid" not in scopes:
            raise bearer_error("insufficient_scope", "The token lacks the openid scope.", 403)
        body: dict[str, Any] = {"sub": grant.identity.subject}
        # A client's approval is its clearance: what it is approved for comes in full, an
        # identifier it is not approved for only masked inside ``agent`` (and then no birth
        # date), by the same rule as every connector's release.
        body.update(grant.identity.release(client.released_claims(scopes) - {"sub"},
                                           privileged=True))
        return JSONResponse(body, headers={"Cache-Control": "no-store"})
