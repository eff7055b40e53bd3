"""A relying party in tests: authlib's OAuth 2 client configured as each demo RP registered.

Protocol tests drive the gateway through this real client library, not hand-built requests.
"""

from __future__ import annotations

import secrets
import ssl
from typing import Any

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.dpop import DPoPSigner
from tests.support.gateway import SECRETS, log_in

CHANGSHA_CALLBACK = "http://127.0.0.1:8001/callback"
YUEYANG_CALLBACK = "http://127.0.0.1:8002/callback"
MINIAPP_CALLBACK = "http://127.0.0.1:8003/callback"


def rp_client(client_id: str, gateway_url: str, **kwargs: Any) -> OAuth2Client:
    """authlib's client configured the way each demo RP registered."""
    settings: dict[str, Any] = {
        "changsha-gov": {"client_secret": SECRETS["changsha-gov"],
                         "token_endpoint_auth_method": "client_secret_basic",
                         "redirect_uri": CHANGSHA_CALLBACK, "scope": "openid profile phone"},
        "yueyang-gov": {"client_secret": SECRETS["yueyang-gov"],
                        "token_endpoint_auth_method": "client_secret_post",
                        "redirect_uri": YUEYANG_CALLBACK, "scope": "openid profile region"},
        "hunan-miniapp": {"token_endpoint_auth_method": "none",
                          "redirect_uri": MINIAPP_CALLBACK, "scope": "openid profile phone"},
    }[client_id]
    signer: DPoPSigner | None = kwargs.pop("dpop", None)  # proofs with every request
    settings.update(kwargs)
    client = OAuth2Client(client_id=client_id, code_challenge_method="S256", **settings)
    if signer is not None:
        client.event_hooks["request"].append(signer.hook)
        client.dpop = signer
    return client


def discovery(gateway_url: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{gateway_url}/.well-known/openid-configuration").json()
    return data


def validate_id_token(gateway_url: str, id_token: str, client_id: str, nonce: str | None,
                      access_token: str | None = None) -> dict[str, Any]:
    """Verify with the published JWKS, then authlib's OIDC claim rules."""
    meta = discovery(gateway_url)
    keys = KeySet.import_key_set(httpx.get(meta["jwks_uri"]).json())
    token = jwt.decode(id_token, keys, algorithms=meta["id_token_signing_alg_values_supported"])
    params: dict[str, Any] = {"nonce": nonce, "client_id": client_id}
    if access_token:
        params["access_token"] = access_token
    claims = CodeIDToken(token.claims, token.header,
                         options={"iss": {"essential": True, "value": meta["issuer"]},
                                  "aud": {"essential": True, "value": client_id}},
                         params=params)
    claims.validate()
    return dict(claims)


def authorize_url(client: OAuth2Client, gateway_url: str, **params: str) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    url, _ = client.create_authorization_url(f"{gateway_url}/authorize",
                                             code_verifier=verifier, **params)
    return url, verifier


def full_login(gateway_url: str, browser: httpx.Client, client_id: str = "changsha-gov",
               *, dpop: DPoPSigner | None = None, verify: ssl.SSLContext | bool = True,
               **params: str) -> tuple[OAuth2Client, dict[str, Any], str]:
    """Log in through the pages and redeem the code (``verify``: the CA file of an https
    gateway, for the RP's own calls)."""
    client = rp_client(client_id, gateway_url, dpop=dpop, verify=verify)
    nonce = secrets.token_urlsafe(12)
    url, verifier = authorize_url(client, gateway_url, nonce=nonce, **params)
    callback = log_in(browser, url)
    token = client.fetch_token(f"{gateway_url}/token", authorization_response=callback,
                               code_verifier=verifier)
    return client, dict(token), nonce
