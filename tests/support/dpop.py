"""DPoP proofs (RFC 9449) as a client makes them, with joserfc, for protocol tests."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

__all__ = ["DPoPSigner", "ath"]


def ath(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class DPoPSigner:
    """One client key; ``proof`` makes a proof, ``hook`` adds one to each /token POST."""

    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        self.key: ECKey | RSAKey = (ECKey.generate_key("P-256") if alg == "ES256"
                                    else RSAKey.generate_key(2048))
        self.nonce: str | None = None

    @property
    def jkt(self) -> str:
        return self.key.thumbprint()

    def proof(self, method: str, url: str, *, access_token: str | None = None,
              nonce: str | None = None, iat: int | None = None, jti: str | None = None,
              **header: Any) -> str:
        claims: dict[str, Any] = {"htm": method, "htu": url,
                                  "iat": int(time.time()) if iat is None else iat,
                                  "jti": jti or secrets.token_urlsafe(16)}
        if access_token is not None:
            claims["ath"] = ath(access_token)
        if nonce or self.nonce:
            claims["nonce"] = nonce or self.nonce
        fields = {"typ": "dpop+jwt", "alg": self.alg,
                  "jwk": self.key.as_dict(private=False), **header}
        return jwt.encode(fields, claims, self.key, algorithms=[self.alg])

    def hook(self, request: httpx.Request) -> None:
        if request.method == "POST" and request.url.path == "/token" \
                and "dpop" not in request.headers:
            url = str(request.url.copy_with(query=None))
            request.headers["DPoP"] = self.proof("POST", url)
