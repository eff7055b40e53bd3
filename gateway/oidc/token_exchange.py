"""RFC 8693 token exchange at ``/token``: an access token for one named system.

A client (the mini-program, or an RP) trades an access token the gateway issued *to it*
for one whose ``aud`` is one system of ``systems.toml``, carrying that system's
registered claims — but never one its holder could not see itself: the token is a JWT its
holder can read, so it carries the system's claims that the client is approved for
(``Identity.release``, the one release rule). The new token keeps the subject token's
grant (``gid``): logout or revocation of that grant ends it too. Only tokens whose ``aud``
is their client are accepted as subjects, so an exchanged token is never exchanged again.
Errors follow RFC 8693 §2.2.2: a bad or foreign subject token is ``invalid_request``, an
audience the client may not have is ``invalid_target``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from authlib.oauth2.rfc6749 import (
    BaseGrant,
    InvalidRequestError,
    OAuth2Error,
    TokenEndpointMixin,
    UnauthorizedClientError,
)

from gateway.config import SystemConfig, Systems
from gateway.errors import TokenError
from gateway.keys import KeyRing, validate_claims
from gateway.oidc.active import ActiveTokens
from gateway.oidc.clients import TOKEN_AUTH_METHODS, TOKEN_EXCHANGE, Client
from gateway.oidc.grant import Grant
from gateway.oidc.minter import ACCESS_TOKEN_TYP, TokenMinter
from gateway.urls import url_under

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "TOKEN_EXCHANGE",
    "InvalidTargetError",
    "Subject",
    "SubjectTokens",
    "TokenExchangeGrant",
]

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8693 §2.2.2: the audience or resource is unknown or not allowed."""

    error = "invalid_target"


@dataclass(frozen=True)
class Subject:
    """A subject token that checked out: its claims and its (still active) grant."""

    claims: dict[str, Any]
    grant: Grant


class SubjectTokens:
    """Checks a subject token as ``/userinfo`` checks an access token: our signature,
    ``at+jwt``, ``iss``, ``exp``, and its grant still active (not revoked, session alive)."""

    def __init__(self, *, keys: KeyRing, issuer: str, active: ActiveTokens) -> None:
        self.keys = keys
        self.issuer = issuer
        self.active = active

    async def read(self, token: str) -> Subject | None:
        if token.count(".") != 2:
            return None
        try:
            _, claims = self.keys.verify(token, typ=ACCESS_TOKEN_TYP)
            validate_claims(claims, issuer=self.issuer, audience=None,
                            required=("iss", "sub", "aud", "exp", "iat", "client_id", "gid"))
        except TokenError:
            return None
        if claims.get("aud") != claims.get("client_id"):
            return None  # an exchanged token (its audience a system) is not a subject
        grant = await self.active.grant_of_access_token(claims)
        return None if grant is None else Subject(claims, grant)


class ExchangeServer(Protocol):
    """What the grant uses of the authorization server that runs it."""

    @property
    def systems(self) -> Systems: ...

    @property
    def minter(self) -> TokenMinter: ...


class TokenExchangeGrant(BaseGrant, TokenEndpointMixin):  # type: ignore[misc]
    GRANT_TYPE = TOKEN_EXCHANGE
    TOKEN_ENDPOINT_AUTH_METHODS = list(TOKEN_AUTH_METHODS)  # noqa: RUF012
    server: ExchangeServer

    def validate_token_request(self) -> None:
        client: Client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(TOKEN_EXCHANGE):
            raise UnauthorizedClientError("This client may not exchange tokens.")
        data = self.request.payload.data
        if data.get("subject_token_type") != ACCESS_TOKEN_TYPE:
            raise InvalidRequestError(f"subject_token_type must be {ACCESS_TOKEN_TYPE}.")
        if "actor_token" in data or "actor_token_type" in data:
            raise InvalidRequestError("Delegation (actor_token) is not supported.")
        requested = data.get("requested_token_type")
        if requested is not None and requested != ACCESS_TOKEN_TYPE:
            raise InvalidRequestError(f"Only {ACCESS_TOKEN_TYPE} can be issued.")
        system = self._target(client)
        subject: Subject | None = self.request.work.found.get("subject_token")
        if not data.get("subject_token") or subject is None:
            raise InvalidRequestError("The subject token is invalid, expired or revoked.")
        if subject.grant.client_id != client.client_id:
            raise InvalidRequestError("The subject token was issued to another client.")
        cnf = subject.claims.get("cnf")
        if isinstance(cnf, dict) and cnf.get("jkt") != self.request.work.jkt:
            raise InvalidRequestError("The subject token is bound to another DPoP key.")
        self.request.client = client
        self.request.user = subject.grant
        self.request.exchange_target = system

    def _target(self, client: Client) -> SystemConfig:
        """The one system named by ``audience`` (a system id) and/or ``resource`` (a URL
        under one of its instances); two different ones, or none, are refused."""
        lists = self.request.payload.datalist
        named: set[str] = set(lists.get("audience", []))
        for resource in lists.get("resource", []):
            named.add(self._system_of(resource))
        if len(named) != 1:
            raise InvalidTargetError("Name exactly one system (audience or resource).")
        (system_id,) = named
        system = self.server.systems.get(system_id)
        if system is None or system_id not in client.config.token_exchange_audiences:
            raise InvalidTargetError("This client may not have tokens for that system.")
        return system

    def _system_of(self, resource: str) -> str:
        for system in self.server.systems:
            if any(url_under(resource, instance) for instance in system.instances):
                return system.id
            if any(url_under(resource, f"https://{host}") for host in system.hosts):
                return system.id
        raise InvalidTargetError("The resource is not a registered system.")

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        subject: Subject = self.request.work.found["subject_token"]
        system: SystemConfig = self.request.exchange_target
        client: Client = self.request.client
        grant = subject.grant
        approved = client.released_claims(str(subject.claims.get("scope", "")).split())
        claims = grant.identity.release(approved & frozenset(system.claims) - {"sub"},
                                        privileged=system.privileged)
        minter = self.server.minter
        expires_at = min(int(subject.claims["exp"]), int(time.time()) + minter.access_token_ttl)
        token = minter.exchanged_access_token(grant, client, audience=system.id,
                                              claims=claims, expires_at=expires_at,
                                              jkt=self.request.work.jkt)
        body = {
            "access_token": token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "DPoP" if self.request.work.jkt else "Bearer",
            "expires_in": max(0, expires_at - int(time.time())),
        }
        return 200, body, [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
