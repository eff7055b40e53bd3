"""DPoP (RFC 9449): proofs of possession of a client's key, and tokens bound to it.

A proof is a JWT the client signs with its own key (``typ`` ``dpop+jwt``, ES256 or RS256,
the public JWK in its header — never ``none`` or HMAC) over the request's method and URL
(``htm``, ``htu``), at a time (``iat``, within ``window`` seconds), once (``jti``: the
store's atomic counter, so one use however many processes see it), with the access
token's hash (``ath``) when it accompanies one and, when asked, a nonce the gateway handed
out (``DPoP-Nonce``, kept in the store). The key's RFC 7638 thumbprint is what tokens are
bound to (``cnf.jkt``). Requests without a ``DPoP`` header from clients that do not need
one never reach this module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from gateway.ids import new_id
from gateway.store.base import Kind, Store
from gateway.urls import normalized_url

__all__ = ["DPOP_ALGS", "PROOF_TYP", "DPoPError", "DPoPProofs", "access_token_hash"]

DPOP_ALGS = ("ES256", "RS256")
PROOF_TYP = "dpop+jwt"
_MIN_RSA_BITS = 2048


class _ProofRegistry(jws.JWSRegistry):
    """A proof's header carries its public key: an RSA one passes joserfc's 512 bytes."""

    max_header_length = 2048


class DPoPError(Exception):
    """A refused proof: ``error`` is ``invalid_dpop_proof`` or ``use_dpop_nonce`` (then
    ``nonce`` is the one to use)."""

    def __init__(self, error: str, description: str, nonce: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.nonce = nonce


def access_token_hash(token: str) -> str:
    """``ath``: base64url of the SHA-256 of the access token."""
    digest = hashlib.sha256(token.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _refuse(description: str) -> DPoPError:
    return DPoPError("invalid_dpop_proof", description)


def _without_query(url: str) -> str | None:
    parts = urlsplit(url)
    return normalized_url(parts._replace(query="", fragment="").geturl())


class DPoPProofs:
    def __init__(self, store: Store, *, window: int = 60, nonce_ttl: int = 300) -> None:
        self.store = store
        self.window = window
        self.nonce_ttl = nonce_ttl
        self.registry = _ProofRegistry(algorithms=DPOP_ALGS)
        self.registries = {alg: _ProofRegistry(algorithms=[alg]) for alg in DPOP_ALGS}

    async def new_nonce(self) -> str:
        nonce = new_id(16)
        await self.store.upsert(Kind.DPOP_NONCE, nonce, {}, self.nonce_ttl)
        return nonce

    async def check(self, proofs: list[str], *, method: str, url: str,
                    access_token: str | None = None, nonce: bool = False) -> str:
        """The thumbprint of the key that signed the one proof in ``proofs`` (the request's
        ``DPoP`` header values); :class:`DPoPError` if there is none or it does not hold."""
        if len(proofs) != 1 or not proofs[0]:
            raise _refuse("One DPoP proof is required.")
        claims, jkt = self._verified(proofs[0])
        if claims.get("htm") != method:
            raise _refuse("The proof is for another method (htm).")
        htu = claims.get("htu")
        if not isinstance(htu, str) or _without_query(htu) is None \
                or _without_query(htu) != _without_query(url):
            raise _refuse("The proof is for another URL (htu).")
        iat = claims.get("iat")
        if not isinstance(iat, int) or isinstance(iat, bool) \
                or abs(time.time() - iat) > self.window:
            raise _refuse("The proof is too old or from the future (iat).")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 8 <= len(jti) <= 256:
            raise _refuse("The proof needs a jti.")
        if access_token is not None and claims.get("ath") != access_token_hash(access_token):
            raise _refuse("The proof is not for this access token (ath).")
        if nonce:
            given = claims.get("nonce")
            if not isinstance(given, str) or len(given) > 64 \
                    or await self.store.find(Kind.DPOP_NONCE, given) is None:
                raise DPoPError("use_dpop_nonce", "Use the server's DPoP nonce.",
                                await self.new_nonce())
        # Last, so a proof refused for another reason does not use up its jti.
        once = hashlib.sha256(f"{jkt}\n{jti}".encode()).hexdigest()
        counted = await self.store.incr(Kind.DPOP_PROOF, once, 2 * self.window + 5)
        if counted.value != 1:
            raise _refuse("This proof was already used (jti).")
        return jkt

    def _verified(self, proof: str) -> tuple[dict[str, Any], str]:
        try:
            obj = jws.extract_compact(proof.encode("ascii"), registry=self.registry)
        except (JoseError, ValueError, TypeError, UnicodeError) as error:
            raise _refuse("The proof is not a JWT.") from error
        header = obj.headers()
        alg = header.get("alg")
        if header.get("typ") != PROOF_TYP or alg not in DPOP_ALGS:
            raise _refuse("The proof must be a dpop+jwt signed ES256 or RS256.")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict) or "d" in jwk or "crit" in header:
            raise _refuse("The proof must carry a public JWK.")
        try:
            key: ECKey | RSAKey
            if alg == "ES256":
                key = ECKey.import_key(jwk)
                if key.curve_name != "P-256":
                    raise _refuse("ES256 needs a P-256 key.")
            else:
                key = RSAKey.import_key(jwk)
                if key.raw_value.key_size < _MIN_RSA_BITS:
                    raise _refuse("The RSA key is too small.")
            valid = jws.validate_compact(obj, key, registry=self.registries[alg])
            claims = json.loads(obj.payload or b"")
        except (JoseError, ValueError, TypeError, AttributeError) as error:
            raise _refuse("The proof's key or signature is invalid.") from error
        if not valid or not isinstance(claims, dict):
            raise _refuse("The proof's signature is invalid.")
        return claims, key.thumbprint()
