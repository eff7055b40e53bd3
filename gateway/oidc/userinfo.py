"""``/userinfo`` (OIDC Core §5.3): the claims the token's scopes and the client allow."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import ProtocolError
from gateway.keys import KeyRing
from gateway.oidc.active import ActiveTokens
from gateway.oidc.bearer import BearerTokens, bearer_error
from gateway.oidc.bridge import published_url
from gateway.oidc.clients import ClientRegistry
from gateway.oidc.dpop import DPoPError, DPoPProofs

__all__ = ["UserinfoEndpoint"]


class UserinfoEndpoint:
    def __init__(self, *, keys: KeyRing, clients: ClientRegistry, active: ActiveTokens,
                 issuer: str, dpop: DPoPProofs) -> None:
        self.bearer = BearerTokens(keys=keys, clients=clients, active=active, issuer=issuer)
        self.dpop = dpop
        self.issuer = issuer

    async def _token(self, request: Request) -> tuple[str, str]:
        """The access token and how it came: ``bearer`` or ``dpop`` (RFC 9449 §7.1)."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("bearer", "dpop") and value.strip():
            return scheme.lower(), value.strip()
        if request.method == "POST" and request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            form = await request.form()
            token = form.get("access_token")
            if isinstance(token, str) and token:
                return "bearer", token
        raise ProtocolError("invalid_request", "A bearer access token is required.",
                            status=401, headers={"WWW-Authenticate": 'Bearer realm="roam"'})

    async def handle(self, request: Request) -> Response:
        scheme, token = await self._token(request)
        claims, client = self.bearer.read(token)
        await self._check_binding(request, scheme, token, claims)
        grant = await self.bearer.grant_of(claims)
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

    async def _check_binding(self, request: Request, scheme: str, token: str,
                             claims: dict[str, Any]) -> None:
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
                                           access_token=token)
        except DPoPError as error:
            raise bearer_error("invalid_dpop_proof", error.description,
                                scheme="DPoP") from None
        if proved != jkt:
            raise bearer_error("invalid_dpop_proof", "The proof is by another key.",
                                scheme="DPoP")
