"""``jwt-assertion``: a short-lived JWT for one system, signed with the gateway's keys.

The token goes in ``Authorization: Bearer <jwt>`` (default) or, as the bare JWT, in any
header the system names. Claims: ``iss`` (the gateway), ``aud`` (the system's audience),
``sub``, ``iat``, ``exp`` (iat + ttl), ``jti``, ``acr``, and the released claims renamed
per system by ``claim_map``. Header ``{"alg", "kid", "typ": "JWT"}``; the system verifies
it against the gateway's JWKS (docs/connectors.md).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.base import (
    ConnectorContext,
    Outgoing,
    Route,
    released_claims,
    strip_client_identity,
)
from gateway.errors import ConfigError
from gateway.identity import KNOWN_CLAIMS, Identity
from gateway.keys import KeyRing

__all__ = ["JwtAssertion", "JwtAssertionConfig"]

#: Claim names the assertion sets itself; ``claim_map`` may not rename anything onto them.
#: Nor onto ``azp``: an assertion must never look like an ID token issued to a client
#: (gateway/oidc/id_token_hint.py; its ``aud``, a system id, is never a client's id).
RESERVED = frozenset({"iss", "aud", "sub", "iat", "exp", "nbf", "jti", "acr", "azp"})
_HEADER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


class JwtAssertionConfig(BaseModel):
    """Settings: ``header`` (``Authorization`` means ``Bearer <jwt>``), ``ttl`` seconds
    (≤ 300), ``claim_map`` (Roam claim name -> the system's name), ``alg``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    header: str = "Authorization"
    ttl: int = Field(default=60, ge=5, le=300)
    claim_map: dict[str, str] = Field(default_factory=dict)
    alg: Literal["RS256", "ES256"] = "RS256"

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not _HEADER_RE.match(value):
            raise ValueError(f"{value!r} is not a header name")
        return value

    @field_validator("claim_map")
    @classmethod
    def _claim_map(cls, value: dict[str, str]) -> dict[str, str]:
        problems = []
        for source, target in value.items():
            if source not in KNOWN_CLAIMS:
                problems.append(f"{source!r} is not a claim Roam releases "
                                f"(known: {', '.join(sorted(KNOWN_CLAIMS))})")
            if not target or target in RESERVED:
                problems.append(f"{source!r} cannot be renamed to {target!r}")
        targets = list(value.values())
        duplicates = sorted({t for t in targets if targets.count(t) > 1})
        if duplicates:
            problems.append(f"several claims renamed to {', '.join(duplicates)}")
        unmapped_clash = sorted(set(targets) & (KNOWN_CLAIMS - set(value)))
        if unmapped_clash:
            problems.append(f"renamed onto claim(s) sent under their own name: "
                            f"{', '.join(unmapped_clash)}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    def open(self, ctx: ConnectorContext) -> JwtAssertion:
        if self.alg not in ctx.keys.algs:
            raise ConfigError([f"alg: the gateway has no {self.alg} signing key"])
        return JwtAssertion(keys=ctx.keys, issuer=ctx.issuer, header=self.header,
                            ttl=self.ttl, claim_map=dict(self.claim_map), alg=self.alg)


@dataclass(frozen=True)
class JwtAssertion:
    """The opened connector: stateless; signs with the gateway's key ring."""

    keys: KeyRing = field(repr=False)
    issuer: str
    header: str = "Authorization"
    ttl: int = 60
    claim_map: dict[str, str] = field(default_factory=dict)
    alg: str = "RS256"
    type_name: str = "jwt-assertion"

    def present(self, identity: Identity, outgoing: Outgoing, route: Route, *,
                now: float) -> None:
        iat = int(now)
        payload = {
            self.claim_map.get(name, name): value
            for name, value in released_claims(identity, route).items()
            if name not in ("sub", "acr")
        }
        payload.update({
            "iss": self.issuer,
            "aud": route.audience,
            "sub": identity.subject,
            "iat": iat,
            "exp": iat + self.ttl,
            "jti": secrets.token_urlsafe(18),
            "acr": identity.acr,
        })
        token = self.keys.sign(payload, alg=self.alg, typ="JWT")
        value = f"Bearer {token}" if self.header.lower() == "authorization" else token
        # Defence in depth (the proxy strips too): no forged copy beside the real header.
        headers = strip_client_identity(outgoing.headers,
                                        also_names=frozenset({self.header.lower()}))
        headers.append((self.header, value))
        outgoing.headers[:] = headers
