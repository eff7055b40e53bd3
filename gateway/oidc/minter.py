"""Minting ID tokens and RFC 9068 access tokens.

ID tokens are signed with the client's registered algorithm (RS256 by default: what
legacy Java RPs accept); access tokens with the server's choice (RFC 9068 §2.1:
``[tokens] access_token_alg``, ES256 by default, a client's
``access_token_signed_response_alg`` overriding it), each by the newest key of its
algorithm — so an RS256 client's token response costs one RSA signature, not two.
"""

from __future__ import annotations

import time
from typing import Any

from authlib.oidc.core.util import create_half_hash

from gateway.ids import new_id
from gateway.keys import KeyRing
from gateway.oidc.clients import Client
from gateway.oidc.grant import Grant
from gateway.oidc.subjects import Subjects

__all__ = ["ACCESS_TOKEN_TYP", "ID_TOKEN_TYP", "TokenMinter"]

ACCESS_TOKEN_TYP = "at+jwt"
ID_TOKEN_TYP = "JWT"  # what RPs' libraries expect; ``aud`` and ``azp`` tell it from others


class TokenMinter:
    def __init__(
        self, keys: KeyRing, *, issuer: str, access_token_ttl: int, id_token_ttl: int,
        subjects: Subjects, access_token_alg: str,
    ) -> None:
        self.keys = keys
        self.access_token_alg = access_token_alg
        self.issuer = issuer
        self.subjects = subjects  # the sub each client sees
        self.access_token_ttl = access_token_ttl
        self.id_token_ttl = id_token_ttl

    def access_token(self, grant: Grant, client: Client, scope: str, *,
                     jkt: str | None = None) -> str:
        """``jkt``: the RFC 7638 thumbprint of the DPoP key the token is bound to."""
        now = int(time.time())
        claims = self._access_claims(grant, client, client.client_id, now,
                                     now + self.access_token_ttl, jkt)
        claims["scope"] = scope
        alg = client.config.access_token_alg(self.access_token_alg)
        return self.keys.sign(claims, alg=alg, typ=ACCESS_TOKEN_TYP)

    def exchanged_access_token(self, grant: Grant, client: Client, *, audience: str,
                               claims: dict[str, Any], expires_at: int,
                               jkt: str | None = None) -> str:
        """RFC 8693: an access token for one system (``aud``), with the claims released
        to it; its grant is the subject token's, so ending that grant ends this token."""
        now = int(time.time())
        body = {**claims, **self._access_claims(grant, client, audience, now, expires_at, jkt)}
        alg = client.config.access_token_alg(self.access_token_alg)
        return self.keys.sign(body, alg=alg, typ=ACCESS_TOKEN_TYP)

    def _access_claims(self, grant: Grant, client: Client, audience: str, now: int,
                       expires_at: int, jkt: str | None) -> dict[str, Any]:
        identity = grant.identity
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subjects.of(client.config, identity.subject),
            "aud": audience,
            "client_id": client.client_id,
            "iat": now,
            "exp": expires_at,
            "jti": new_id(16),
            "auth_time": identity.auth_time,
            "acr": identity.acr,
            "gid": grant.grant_id,
        }
        if grant.sid:
            claims["sid"] = grant.sid
        if jkt:
            claims["cnf"] = {"jkt": jkt}
        return claims

    def id_token(
        self,
        grant: Grant,
        client: Client,
        *,
        access_token: str | None,
        include_nonce: bool,
    ) -> str:
        now = int(time.time())
        identity = grant.identity
        alg = client.config.id_token_signed_response_alg
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subjects.of(client.config, identity.subject),
            "aud": client.client_id,
            "azp": client.client_id,
            "iat": now,
            "exp": now + self.id_token_ttl,
            "auth_time": identity.auth_time,
            "acr": identity.acr,
            "amr": list(identity.amr),
        }
        if grant.sid:
            claims["sid"] = grant.sid
        if include_nonce and grant.nonce:
            claims["nonce"] = grant.nonce
        if access_token:
            at_hash = create_half_hash(access_token, alg)
            if at_hash is not None:
                claims["at_hash"] = at_hash.decode()
        return self.keys.sign(claims, alg=alg, typ=ID_TOKEN_TYP)
