"""Token revocation (RFC 7009) and introspection (RFC 7662), on authlib's endpoints.

Both look a token up the same way: an access token is a JWT of ours whose grant must
still be active (``ActiveTokens``); a refresh token must be its grant's current one
(``gateway.oidc.refresh``), its session alive unless it is an offline grant. Revoking a
refresh token ends its whole grant; revoking an access token puts its ``jti`` on the
revocation list until it expires.
Confidential clients may introspect their own tokens; registered resource servers any.
Each revocation is an audit event (``token.revoke``); introspection is not.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from starlette.requests import Request
from starlette.responses import Response

from gateway.audit import audit_event
from gateway.errors import TokenError
from gateway.keys import KeyRing, validate_claims
from gateway.oidc.bridge import (
    HttpRequest,
    Reply,
    check_basic_credentials,
    form_params,
    json_reply,
    published_url,
)
from gateway.oidc.clients import TOKEN_AUTH_METHODS, Client, ClientRegistry
from gateway.oidc.grant import Grant
from gateway.oidc.minter import ACCESS_TOKEN_TYP
from gateway.oidc.refresh import RefreshTokens
from gateway.oidc.server import RoamAuthorizationServer

__all__ = ["FoundToken", "LifecycleEndpoints", "TokenLookup"]


@dataclass
class FoundToken:
    """A token we issued, as both endpoints need to see it."""

    kind: str  # "access_token" | "refresh_token"
    grant: Grant
    scope: str
    active: bool
    claims: dict[str, Any] = field(default_factory=dict)  # access tokens only

    def check_client(self, client: Client) -> bool:
        return bool(client.client_id == self.grant.client_id)

    def is_expired(self) -> bool:
        return False  # expiry is part of ``active``

    def is_revoked(self) -> bool:
        return not self.active


class TokenLookup:
    def __init__(self, *, keys: KeyRing, issuer: str, refresh: RefreshTokens,
                 clients: ClientRegistry) -> None:
        self.keys = keys
        self.issuer = issuer
        self.refresh = refresh
        self.active = refresh.active
        self.clients = clients

    async def find(self, token: str, hint: str | None) -> FoundToken | None:
        order = ["refresh_token", "access_token"]
        if hint == "access_token":
            order.reverse()
        for kind in order:
            found = await (self._access(token) if kind == "access_token"
                           else self._refresh(token))
            if found is not None:
                # a deleted or suspended client's tokens are no longer active anywhere
                await self.clients.ensure(found.grant.client_id)
                if self.clients.get(found.grant.client_id) is None:
                    found.active = False
                return found
        return None

    async def _access(self, token: str) -> FoundToken | None:
        if token.count(".") != 2:
            return None
        try:
            _, claims = self.keys.verify(token, typ=ACCESS_TOKEN_TYP)
            validate_claims(claims, issuer=self.issuer, audience=None,
                            required=("iss", "sub", "exp", "iat", "client_id", "gid"))
        except TokenError:
            return None
        grant = await self.active.grant_of_access_token(claims)
        if grant is None:
            # Still ours, so a revocation of it must be accepted; it is simply not active.
            return FoundToken("access_token", _orphan(claims), str(claims.get("scope", "")),
                              active=False, claims=claims)
        return FoundToken("access_token", grant, str(claims.get("scope", "")), active=True,
                          claims=claims)

    async def _refresh(self, token: str) -> FoundToken | None:
        found = await self.refresh.lookup(token)
        if found is None:
            return None
        grant, alive = found
        return FoundToken("refresh_token", grant, grant.scope, active=alive)


def _orphan(claims: dict[str, Any]) -> Grant:
    from gateway.identity import Identity, PersonKind

    identity = Identity(subject=str(claims.get("sub")), kind=PersonKind.NATURAL, acr="",
                        amr=(), auth_time=0, region="")
    return Grant(grant_id=str(claims.get("gid", "")), client_id=str(claims.get("client_id")),
                 identity=identity, scope=str(claims.get("scope", "")))


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = list(TOKEN_AUTH_METHODS)  # noqa: RUF012

    def __init__(self, server: RoamAuthorizationServer, lookup: TokenLookup) -> None:
        super().__init__(server)
        self.lookup = lookup

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        return _looked_up(token_string)

    def revoke_token(self, token: FoundToken, request: HttpRequest) -> None:
        active = self.lookup.active
        if token.kind == "refresh_token":
            request.work.then.append(partial(active.revoke_grant, token.grant.grant_id))
        else:
            request.work.then.append(partial(active.revoke_access_token, token.claims))


class _Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    # a resource server is confidential: a secret or a key, never "none"
    CLIENT_AUTH_METHODS = [m for m in TOKEN_AUTH_METHODS if m != "none"]  # noqa: RUF012

    def __init__(self, server: RoamAuthorizationServer, lookup: TokenLookup,
                 issuer: str) -> None:
        super().__init__(server)
        self.lookup = lookup
        self.issuer = issuer

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        return _looked_up(token_string)

    def check_permission(self, token: FoundToken, client: Client, request: Any) -> bool:
        return bool(client.config.resource_server or token.check_client(client))

    def introspect_token(self, token: FoundToken) -> dict[str, Any]:
        grant = token.grant
        body: dict[str, Any] = {
            "active": True,
            "token_type": token.kind,
            "scope": token.scope,
            "client_id": grant.client_id,
            "sub": self.lookup.active.subject_seen(grant),  # as the token's client knows it
            "iss": self.issuer,
            "acr": grant.identity.acr,
            "auth_time": grant.identity.auth_time,
        }
        if grant.sid:
            body["sid"] = grant.sid
        if token.kind == "access_token":
            for claim in ("exp", "iat", "aud", "jti", "cnf"):  # cnf: RFC 9449 §6.2
                if claim in token.claims:
                    body[claim] = token.claims[claim]
        elif grant.expires_at:
            body["exp"] = grant.expires_at
            body["iat"] = int(time.time())  # not kept: rotation makes it "now" in effect
        return body


# authlib's endpoints ask ``query_token(token, hint)`` without the request; what was read
# for this request is found through the task's context, never shared between requests.
_FOUND: ContextVar[dict[str, Any]] = ContextVar("roam_found_tokens")


def _looked_up(token_string: str) -> FoundToken | None:
    found: FoundToken | None = _FOUND.get({}).get(token_string)
    return found


class LifecycleEndpoints:
    def __init__(self, *, server: RoamAuthorizationServer, lookup: TokenLookup,
                 issuer: str) -> None:
        self.server = server
        self.lookup = lookup
        self.issuer = issuer
        server.register_endpoint(_Revocation(server, lookup))
        server.register_endpoint(_Introspection(server, lookup, issuer))

    async def _read(self, request: HttpRequest) -> None:
        token = request.form.get("token")
        if token:
            request.work.found[token] = await self.lookup.find(
                token, request.form.get("token_type_hint"))
        _FOUND.set(request.work.found)

    async def _run(self, request: Request, name: str) -> tuple[HttpRequest, Reply]:
        check_basic_credentials(request.headers)
        pairs = await form_params(request)
        oauth_request = HttpRequest("POST", published_url(self.issuer, request), request.headers,
                                     form=pairs)
        reply = await self.server.endpoint_response(name, oauth_request, self._read)
        return oauth_request, reply

    async def revoke(self, request: Request) -> Response:
        oauth_request, reply = await self._run(request, "revocation")
        found = oauth_request.work.found.get(oauth_request.form.get("token") or "")
        client = getattr(oauth_request, "client", None)
        grant = found.grant if isinstance(found, FoundToken) else None
        body = reply.body if isinstance(reply.body, dict) else {}
        audit_event("token.revoke", "success" if reply.status < 400 else "failure",
                    subject=grant.identity.subject if grant is not None else None,
                    client=getattr(client, "client_id", None) or oauth_request.form.get(
                        "client_id"),
                    token_type=found.kind if isinstance(found, FoundToken) else None,
                    known=isinstance(found, FoundToken), sid=grant.sid if grant else None,
                    error=body.get("error"))
        return json_reply(reply)

    async def introspect(self, request: Request) -> Response:
        return json_reply((await self._run(request, "introspection"))[1])
