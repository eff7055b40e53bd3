"""``/userinfo`` (OIDC Core §5.3): the claims the token's scopes and the client allow."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import ProtocolError, TokenError
from gateway.keys import KeyRing, validate_claims
from gateway.oidc.active import ActiveTokens
from gateway.oidc.clients import ClientRegistry
from gateway.oidc.minter import ACCESS_TOKEN_TYP

__all__ = ["UserinfoEndpoint"]


def _bearer_error(error: str, description: str, status: int = 401) -> ProtocolError:
    challenge = f'Bearer error="{error}", error_description="{description}"'
    return ProtocolError(error, description, status=status,
                         headers={"WWW-Authenticate": challenge})


class UserinfoEndpoint:
    def __init__(self, *, keys: KeyRing, clients: ClientRegistry, active: ActiveTokens,
                 issuer: str) -> None:
        self.keys = keys
        self.clients = clients
        self.active = active
        self.issuer = issuer

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
        token = await self._token(request)
        try:
            _, claims = self.keys.verify(token, typ=ACCESS_TOKEN_TYP)
            validate_claims(claims, issuer=self.issuer, audience=None,
                            required=("iss", "sub", "aud", "exp", "iat", "client_id", "gid"))
        except TokenError as exc:
            raise _bearer_error("invalid_token", str(exc)) from None
        client = self.clients.get(str(claims.get("client_id")))
        if client is None or claims.get("aud") != client.client_id:
            raise _bearer_error("invalid_token", "The token was not issued to a known client.")
        grant = await self.active.grant_of_access_token(claims)
        if grant is None:
            raise _bearer_error("invalid_token", "The token has been revoked.")
        scopes = str(claims.get("scope", "")).split()
        if "openid" not in scopes:
            raise _bearer_error("insufficient_scope", "The token lacks the openid scope.", 403)
        body: dict[str, Any] = {"sub": grant.identity.subject}
        # A client's approval is its clearance: what it is approved for comes in full, an
        # identifier it is not approved for only masked inside ``agent`` (and then no birth
        # date), by the same rule as every connector's release.
        body.update(grant.identity.release(client.released_claims(scopes) - {"sub"},
                                           privileged=True))
        return JSONResponse(body, headers={"Cache-Control": "no-store"})
