"""``signed-header``: the identity in ``X-Roam-*`` headers, signed with HMAC-SHA256.

Headers added (prefix configurable, default ``X-Roam-``)::

    X-Roam-Sub        subject id
    X-Roam-Acr        assurance level, L1..L4
    X-Roam-Claims     base64url (no padding) of compact UTF-8 JSON of the released claims
    X-Roam-Timestamp  integer epoch seconds
    X-Roam-Nonce      unique per request (a random per-process prefix, then a counter)
    X-Roam-Signature  base64url(HMAC-SHA256(secret, canonical)), no padding

    canonical = "\\n".join([METHOD, path-with-query, timestamp, nonce, sub, acr, claims])

``verify()`` is the reference check for upstream systems (docs/connectors.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import re
import secrets
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import Field, field_validator

from connectors.base import (
    ConnectorContext,
    Outgoing,
    Route,
    released_claims,
    strip_client_identity,
)
from connectors.secret import SharedSecretSettings
from gateway.errors import TokenError
from gateway.identity import Identity
from gateway.memo import remember

__all__ = [
    "SignatureError",
    "SignedHeader",
    "SignedHeaderConfig",
    "Verified",
    "canonical_string",
    "sign",
    "verify",
]

_HEADER_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*-$")
_SAFE_VALUE_RE = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: no spaces, no newlines
_FIELDS = ("sub", "acr", "claims", "timestamp", "nonce", "signature")


class SignedHeaderConfig(SharedSecretSettings):
    """Settings: ``secret`` (≥ 32 characters) or ``secret_env`` naming an environment
    variable that holds it (exactly one); ``window`` seconds of accepted clock skew and
    replay memory; ``header_prefix``."""

    window: int = Field(default=300, ge=5, le=3600)
    header_prefix: str = "X-Roam-"

    @field_validator("header_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _HEADER_PREFIX_RE.match(value):
            raise ValueError("must be a header name prefix ending in '-', like 'X-Roam-'")
        return value

    def open(self, ctx: ConnectorContext) -> SignedHeader:
        return SignedHeader(secret=self.resolved_secret(), prefix=self.header_prefix)




class SignedHeader:
    """The opened connector: holds only its secret and header prefix.

    ``present`` runs on every proxied request, so what does not change per request is made
    once: the header names and the HMAC keyed with the secret (copied per request). Nonces
    are a random prefix drawn when the connector opens, then a counter: unique across
    processes and restarts without a ``getrandom`` call per request.
    """

    type_name = "signed-header"

    def __init__(self, *, secret: bytes, prefix: str = "X-Roam-") -> None:
        self.secret = secret
        self.prefix = prefix
        self._names = tuple(prefix + name.capitalize() for name in _FIELDS)
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)
        self._nonce_prefix = secrets.token_urlsafe(12) + "."
        self._count = itertools.count()
        # (identity, route) -> their X-Roam-Sub/-Acr/-Claims values; see _identity_headers
        self._made: dict[tuple[int, int], tuple[Identity, Route, tuple[str, str, str]]] = {}

    def __repr__(self) -> str:
        return f"SignedHeader(prefix={self.prefix!r})"  # never the secret

    def present(self, identity: Identity, outgoing: Outgoing, route: Route, *,
                now: float) -> None:
        sub, acr, claims = self._identity_headers(identity, route)
        timestamp = str(int(now))
        nonce = f"{self._nonce_prefix}{next(self._count):x}"
        signature = _signature(self._keyed, outgoing.method, outgoing.path,
                               timestamp=timestamp, nonce=nonce, sub=sub, acr=acr, claims=claims)
        # Defence in depth (the proxy strips too): no forged copy beside the real header.
        headers = strip_client_identity(outgoing.headers, also_prefix=self.prefix)
        headers.extend(zip(self._names, (sub, acr, claims, timestamp, nonce, signature),
                           strict=True))
        outgoing.headers[:] = headers


    def _identity_headers(self, identity: Identity, route: Route) -> tuple[str, str, str]:
        """``sub``, ``acr`` and the encoded released claims, made once per identity and
        route objects. Both are immutable values that stay the same object across requests
        (the session's decoded identity, the proxy's per-instance route), and each entry
        holds them, so an ``id`` is never taken for another object's."""
        key = (id(identity), id(route))
        made = self._made.get(key)
        if made is not None and made[0] is identity and made[1] is route:
            return made[2]
        values = (_header_safe("sub", identity.subject), _header_safe("acr", identity.acr),
                  _b64(_claims_json(released_claims(identity, route))))
        return remember(self._made, key, (identity, route, values), limit=MADE_KEPT)[2]


MADE_KEPT = 4096
"""Identity headers a signed-header connector keeps made (one per live session, roughly)."""


class SignatureError(TokenError):
    """The signed headers are missing, tampered with, too old, or replayed."""


@dataclass(frozen=True)
class Verified:
    """What an upstream learns from valid signed headers."""

    sub: str
    acr: str
    claims: dict[str, Any]
    timestamp: int
    nonce: str


def canonical_string(method: str, path: str, *, timestamp: str, nonce: str, sub: str,
                     acr: str, claims: str) -> str:
    return "\n".join([method.upper(), path, timestamp, nonce, sub, acr, claims])


def sign(secret: bytes, method: str, path: str, *, timestamp: str, nonce: str, sub: str,
         acr: str, claims: str) -> str:
    """base64url(HMAC-SHA256(secret, canonical string)), without padding."""
    return _signature(hmac.new(secret, digestmod=hashlib.sha256), method, path,
                      timestamp=timestamp, nonce=nonce, sub=sub, acr=acr, claims=claims)


def _signature(keyed: hmac.HMAC, method: str, path: str, *, timestamp: str, nonce: str,
               sub: str, acr: str, claims: str) -> str:
    mac = keyed.copy()
    mac.update(canonical_string(method, path, timestamp=timestamp, nonce=nonce, sub=sub,
                                acr=acr, claims=claims).encode("utf-8"))
    return _b64(mac.digest())


def verify(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    method: str,
    path: str,
    *,
    secret: bytes | str,
    window: int = 300,
    now: float,
    seen_nonces: MutableMapping[str, float],
    prefix: str = "X-Roam-",
) -> Verified:
    """Check signed headers as an upstream system must; raise ``SignatureError`` if bad.

    ``path`` is the request path with its query, exactly as received. ``seen_nonces``
    (nonce -> time it may be forgotten) is the upstream's replay memory; one process
    may use a dict, several share e.g. Redis ``SET nonce 1 NX EX window``.
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    wanted = {prefix.lower() + name: name for name in _FIELDS}
    got: dict[str, str] = {}
    for name, value in items:
        which = wanted.get(name.lower())
        if which is None:
            continue
        if which in got:
            raise SignatureError(f"duplicate {prefix}{which.capitalize()} header")
        got[which] = value
    missing = [prefix + name.capitalize() for name in _FIELDS if name not in got]
    if missing:
        raise SignatureError(f"missing header(s): {', '.join(missing)}")

    try:
        timestamp = int(got["timestamp"])
    except ValueError:
        raise SignatureError("bad timestamp") from None
    if abs(now - timestamp) > window:
        raise SignatureError("timestamp outside the accepted window")

    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    expected = sign(key, method, path, timestamp=got["timestamp"], nonce=got["nonce"],
                    sub=got["sub"], acr=got["acr"], claims=got["claims"])
    if not hmac.compare_digest(expected.encode("ascii"), got["signature"].encode("utf-8")):
        raise SignatureError("bad signature")

    for nonce, forget_at in list(seen_nonces.items()):
        if forget_at < now:
            del seen_nonces[nonce]
    if got["nonce"] in seen_nonces:
        raise SignatureError("nonce already used")
    seen_nonces[got["nonce"]] = timestamp + window

    try:
        claims = json.loads(_unb64(got["claims"]).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise SignatureError("bad claims header") from None
    if not isinstance(claims, dict):
        raise SignatureError("bad claims header")
    return Verified(sub=got["sub"], acr=got["acr"], claims=claims, timestamp=timestamp,
                    nonce=got["nonce"])


def _claims_json(claims: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON with sorted keys: what ``json.dumps(claims, ensure_ascii=False,
    separators=(",", ":"), sort_keys=True)`` gives, at a tenth of its CPU (orjson)."""
    return orjson.dumps(claims, option=orjson.OPT_SORT_KEYS)


def _header_safe(name: str, value: str) -> str:
    if not _SAFE_VALUE_RE.match(value):
        raise ValueError(f"{name} cannot be sent as a header value")
    return value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
