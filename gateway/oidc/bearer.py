"""Checking a bearer access token of the gateway (RFC 6750), for every endpoint that takes one.

``/userinfo`` and ``/sso/transfer-ticket`` ask the same questions in the same order — our
signature and ``typ`` ``at+jwt``, this ``iss``, a registered client that is the token's
``aud``, and a grant, token and session still live (:class:`ActiveTokens`) — so they
can never disagree on which tokens are good. Errors carry RFC 6750's challenge.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from gateway.errors import ProtocolError, TokenError
from gateway.keys import KeyRing, validate_claims
from gateway.oidc.active import ActiveTokens
from gateway.oidc.clients import Client, ClientRegistry
from gateway.oidc.dpop import DPOP_ALGS
from gateway.oidc.grant import Grant
from gateway.oidc.minter import ACCESS_TOKEN_TYP

__all__ = ["BearerTokens", "Presented", "bearer_error"]


def bearer_error(error: str, description: str, status: int = 401, *,
                 scheme: str = "Bearer") -> ProtocolError:
    """RFC 6750 §3: the error in ``WWW-Authenticate`` as well as in the JSON body (RFC 9449
    §7.1 for the ``DPoP`` scheme, with the proof algorithms accepted)."""
    challenge = f'{scheme} error="{error}", error_description="{description}"'
    if scheme == "DPoP":
        challenge += f', algs="{" ".join(DPOP_ALGS)}"'
    return ProtocolError(error, description, status=status,
                         headers={"WWW-Authenticate": challenge})


class Presented(NamedTuple):
    """A good access token: its claims, its client and the grant behind it."""

    claims: dict[str, Any]
    client: Client
    grant: Grant


class BearerTokens:
    def __init__(self, *, keys: KeyRing, clients: ClientRegistry, active: ActiveTokens,
                 issuer: str) -> None:
        self.keys = keys
        self.clients = clients
        self.active = active
        self.issuer = issuer

    async def check(self, token: str) -> Presented:
        """The token's claims, client and grant; ``invalid_token`` if it is not good."""
        claims, client = self.read(token)
        if "cnf" in claims:  # RFC 9449: a DPoP-bound token is never a bearer token
            raise bearer_error("invalid_token", "The token is bound to a DPoP key; this "
                               "endpoint takes bearer tokens only.")
        return Presented(claims, client, await self.grant_of(claims))

    def read(self, token: str) -> tuple[dict[str, Any], Client]:
        """The token's claims and client: our signature and ``typ``, this ``iss``, a
        registered client that is its ``aud``; ``invalid_token`` otherwise. (``/userinfo``
        checks a DPoP binding between this and :meth:`grant_of`.)"""
        try:
            _, claims = self.keys.verify(token, typ=ACCESS_TOKEN_TYP)
            validate_claims(claims, issuer=self.issuer, audience=None,
                            required=("iss", "sub", "aud", "exp", "iat", "client_id", "gid"))
        except TokenError as exc:
            raise bearer_error("invalid_token", str(exc)) from None
        client = self.clients.get(str(claims.get("client_id")))
        if client is None or claims.get("aud") != client.client_id:
            raise bearer_error("invalid_token", "The token was not issued to a known client.")
        return claims, client

    async def grant_of(self, claims: dict[str, Any]) -> Grant:
        """The live grant behind the token's claims; ``invalid_token`` if revoked."""
        grant = await self.active.grant_of_access_token(claims)
        if grant is None:
            raise bearer_error("invalid_token", "The token has been revoked.")
        return grant
