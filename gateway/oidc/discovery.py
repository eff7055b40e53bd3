"""Discovery (OpenID Connect Discovery 1.0) and the JWKS document."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.identity import KNOWN_CLAIMS, LEVELS, SCOPE_CLAIMS
from gateway.keys import KeyRing
from gateway.oidc.clients import TOKEN_EXCHANGE
from gateway.oidc.dpop import DPOP_ALGS
from gateway.oidc.token_exchange import ACCESS_TOKEN_TYPE

__all__ = ["Discovery", "provider_metadata"]


def provider_metadata(issuer: str, keys: KeyRing, grant_types: list[str] | None = None,
                      *, registration: bool = False) -> dict[str, Any]:
    metadata = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "end_session_endpoint": f"{issuer}/logout",
        "revocation_endpoint": f"{issuer}/revoke",
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint": f"{issuer}/introspect",
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic", "client_secret_post"],
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
        "jwks_uri": f"{issuer}/jwks",
        "scopes_supported": list(SCOPE_CLAIMS),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types or ["authorization_code", "refresh_token",
                                                 TOKEN_EXCHANGE],
        # RFC 8693: what /token takes as subject_token_type and issues (issued_token_type)
        "token_exchange_token_types_supported": [ACCESS_TOKEN_TYPE],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": sorted(keys.algs),
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic", "client_secret_post", "none", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "code_challenge_methods_supported": ["S256"],
        "dpop_signing_alg_values_supported": list(DPOP_ALGS),  # RFC 9449 §5.1
        "claims_supported": sorted(
            {"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp",
             "sid", *KNOWN_CLAIMS}),
        "acr_values_supported": list(LEVELS),
        "prompt_values_supported": ["none", "login"],
        "authorization_response_iss_parameter_supported": True,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "ui_locales_supported": ["zh-CN"],
        "claims_locales_supported": ["zh-CN"],
    }
    if registration:  # RFC 7591 (with an initial access token) and RFC 7592
        metadata["registration_endpoint"] = f"{issuer}/register"
    return metadata


class Discovery:
    def __init__(self, issuer: str, keys: KeyRing, grant_types: list[str] | None = None, *,
                 jwks_max_age: int = 300, registration: bool = False) -> None:
        self.metadata = provider_metadata(issuer, keys, grant_types,
                                          registration=registration)
        self.keys = keys
        self.jwks_cache = f"public, max-age={jwks_max_age}"  # the rotation's schedule

    async def configuration(self, request: Request) -> Response:
        return JSONResponse(self.metadata, headers={"Cache-Control": "public, max-age=300"})

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.keys.jwks(), headers={"Cache-Control": self.jwks_cache},
                            media_type="application/jwk-set+json")
