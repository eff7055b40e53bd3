"""Checking an access token of the gateway presented to one of its own endpoints.

``/userinfo``, ``/sso/transfer-ticket`` and ``/channel/bind`` ask the same questions in
the same order — how the token came (``Authorization: Bearer`` or ``DPoP``, RFC 9449
§7.1), our signature and ``typ`` ``at+jwt``, this ``iss``, a registered client that is
the token's ``aud``, the proof of possession of a DPoP-bound token (with the server's
nonce when its client asks for nonces), and a grant, token and session still live
(:class:`ActiveTokens`) — so they can never disagree on which tokens are good. Errors
carry RFC 6750's challenge (RFC 9449's for DPoP).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from starlette.requests import Request

from gateway.errors import ProtocolError, TokenError
from gateway.keys import KeyRing, validate_claims
from gateway.oidc.active import ActiveTokens
from gateway.oidc.bridge import published_url
from gateway.oidc.clients import Client, ClientRegistry
from gateway.oidc.dpop import DPOP_ALGS, DPoPError, DPoPProofs
from gateway.oidc.grant import Grant
from gateway.oidc.minter import ACCESS_TOKEN_TYP

__all__ = ["BearerTokens", "Presented", "bearer_error"]


def bearer_error(error: str, description: str, status: int = 401, *,
                 scheme: str = "Bearer", nonce: str | None = None) -> ProtocolError:
    """RFC 6750 §3: the error in ``WWW-Authenticate`` as well as in the JSON body (RFC 9449
    §7.1 for the ``DPoP`` scheme, with the proof algorithms accepted, and §9's
    ``DPoP-Nonce`` when the client must use a fresh nonce)."""
    challenge = f'{scheme} error="{error}", error_description="{description}"'
    if scheme == "DPoP":
        challenge += f', algs="{" ".join(DPOP_ALGS)}"'
    headers = {"WWW-Authenticate": challenge}
    if nonce is not None:
        headers["DPoP-Nonce"] = nonce
    return ProtocolError(error, description, status=status, headers=headers)


class Presented(NamedTuple):
    """A good access token: its claims, its client and the grant behind it."""

    claims: dict[str, Any]
    client: Client
    grant: Grant


class BearerTokens:
    def __init__(self, *, keys: KeyRing, clients: ClientRegistry, active: ActiveTokens,
                 issuer: str, dpop: DPoPProofs) -> None:
        self.keys = keys
        self.clients = clients
        self.active = active
        self.issuer = issuer
        self.dpop = dpop

    async def check(self, request: Request, *, form_token: bool = False) -> Presented:
        """The request's token, its client and grant; RFC 6750/9449 errors if it is not
        good. ``form_token``: RFC 6750 §2.2's ``access_token`` form field is taken too."""
        scheme, token = await self._token(request, form_token)
        claims, client = self.read(token)
        await self._check_binding(request, scheme, token, claims, client)
        return Presented(claims, client, await self.grant_of(claims))

    async def _token(self, request: Request, form_token: bool) -> tuple[str, str]:
        """The access token and how it came: ``bearer`` or ``dpop``."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() in ("bearer", "dpop") and value.strip():
            return scheme.lower(), value.strip()
        if form_token and request.method == "POST" and request.headers.get(
                "content-type", "").startswith("application/x-www-form-urlencoded"):
            token = (await request.form()).get("access_token")
            if isinstance(token, str) and token:
                return "bearer", token
        raise ProtocolError("invalid_request", "A bearer access token is required.",
                            status=401, headers={"WWW-Authenticate": 'Bearer realm="roam"'})

    def read(self, token: str) -> tuple[dict[str, Any], Client]:
        """The token's claims and client: our signature and ``typ``, this ``iss``, a
        registered client that is its ``aud``; ``invalid_token`` otherwise."""
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

    async def _check_binding(self, request: Request, scheme: str, token: str,
                             claims: dict[str, Any], client: Client) -> None:
        """A DPoP-bound token (``cnf.jkt``) only with the ``DPoP`` scheme and a proof by
        its key; the ``DPoP`` scheme only for a bound token. Bearer tokens skip all this."""
        cnf = claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        if jkt is None and scheme == "bearer":
            return
        if jkt is None or scheme != "dpop":
            raise bearer_error("invalid_token", "This token must be used with a DPoP proof "
                               "of its key." if jkt else "This token is not DPoP-bound.",
                               scheme="DPoP")
        try:
            proved = await self.dpop.check(request.headers.getlist("dpop"),
                                           method=request.method,
                                           url=published_url(self.issuer, request),
                                           access_token=token,
                                           nonce=client.config.dpop_nonce)
        except DPoPError as error:
            raise bearer_error(error.error, error.description, scheme="DPoP",
                               nonce=error.nonce) from None
        if proved != jkt:
            raise bearer_error("invalid_dpop_proof", "The proof is by another key.",
                               scheme="DPoP")

    async def grant_of(self, claims: dict[str, Any]) -> Grant:
        """The live grant behind the token's claims; ``invalid_token`` if revoked."""
        grant = await self.active.grant_of_access_token(claims)
        if grant is None:
            raise bearer_error("invalid_token", "The token has been revoked.")
        return grant
