"""Signing keys and JWTs: the key directory, the key ring, sign, verify, claim checks.

Every gateway instance loads the same key directory, so every instance signs with the same
keys and publishes the same JWKS. A key file's name carries its time and algorithm::

    20261127T044439Z-es256-1a2b3c4d.pem

The newest key of an algorithm signs. A file dated in the future is published in the JWKS
at once but signs only from that time on: that is how a rotation publishes the next key
before it signs, so relying parties never see an unknown ``kid``. An old key stays
published (and verifiable) until a newer key of its algorithm has signed for
``retire_after`` seconds — every token it signed has expired by then — and is then
*retired*: left out of the JWKS, and deleted by the next ``roam keys rotate``. Each
process re-reads the directory now and then (``gateway.key_rotation``) and
adopts what it finds (:meth:`KeyRing.adopt`), so all follow one schedule without a restart.

Only RS256 and ES256 exist here. ``none`` and HMAC are refused before any parsing of the
signature, and a token is checked only against the one key its ``kid`` names, with that
key's own algorithm, so the RSA-public-key-as-HMAC-secret trick cannot work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
from joserfc import jws
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry
from joserfc.util import urlsafe_b64encode

from gateway.errors import KeyError_, TokenError
from gateway.keyfiles import (
    ALGORITHMS,
    SigningKey,
    generate_key_file,
    load_key_file,
    new_private_key,
    wrap_key,
)
from gateway.memo import remember

_HEADER_CACHE_LIMIT = 16

# A value JSON has no form for (a date, a dataclass) fails rather than becoming a string.
_CLAIMS_JSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

#: Tokens whose signature was checked, kept so that the next check of the same token (a
#: resource server introspecting the token of each API call, userinfo) skips the
#: signature: an ES256 verification is ~0.1 ms, most of an introspection's own work.
#: About 2 KB each; the oldest go first. Only tokens that verified are kept.
VERIFIED_LIMIT = 4096

__all__ = [
    "ALGORITHMS",
    "KeyRing",
    "SigningKey",
    "generate_key_file",
    "validate_claims",
]

class _Signer:
    """Hot-path state for one key: the JWS algorithm object and pre-encoded headers."""

    __slots__ = ("_headers", "alg_model", "signing_key")

    def __init__(self, signing_key: SigningKey) -> None:
        self.signing_key = signing_key
        self.alg_model = jws.JWSRegistry(algorithms=[signing_key.alg]).get_alg(signing_key.alg)
        self._headers: dict[str, bytes] = {}

    def header_segment(self, typ: str) -> bytes:
        segment = self._headers.get(typ)
        if segment is None:
            header = {"alg": self.signing_key.alg, "kid": self.signing_key.kid, "typ": typ}
            text = json.dumps(header, ensure_ascii=True, separators=(",", ":"))
            segment = urlsafe_b64encode(text.encode("ascii"))
            if len(self._headers) < _HEADER_CACHE_LIMIT:
                self._headers[typ] = segment
        return segment


class KeyRing:
    """The gateway's signing keys: sign with the newest, verify with any, publish all.

    Immutable after construction, so every endpoint and connector can share one ring.
    """

    def __init__(self, keys: Iterable[SigningKey], *, retire_after: float | None = None) -> None:
        self.retire_after = retire_after  # None: no key is ever retired
        ordered = sorted(keys, key=lambda k: (k.created, k.kid), reverse=True)
        if not ordered:
            raise KeyError_("the key ring is empty: at least one signing key is needed")
        by_kid: dict[str, SigningKey] = {}
        for key in ordered:
            if key.alg not in ALGORITHMS:
                raise KeyError_(f"key {key.kid}: algorithm {key.alg!r} is not allowed")
            if not key.key.is_private or key.key.alg != key.alg:
                raise KeyError_(f"key {key.kid}: not a private {key.alg} key")
            if key.kid in by_kid:
                raise KeyError_(f"key {key.kid} appears twice")
            by_kid[key.kid] = key
        self._keys = tuple(ordered)
        self._by_kid = by_kid
        self._signers: dict[str, tuple[_Signer, ...]] = {
            alg: tuple(_Signer(k) for k in ordered if k.alg == alg)
            for alg in sorted({k.alg for k in ordered})
        }
        self._verify_registries = {
            alg: jws.JWSRegistry(algorithms=[alg], strict_check_header=False)
            for alg in self._signers
        }
        self._jwks = tuple(k.public_jwk() for k in ordered)
        self._verified: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    # -- construction ------------------------------------------------------------------

    def adopt(self, other: KeyRing) -> None:
        """Take ``other``'s keys (a re-read key directory); everything holding this ring
        signs, verifies and publishes with them from the next call on. No await runs in
        between, so no request sees half of each."""
        self.retire_after = other.retire_after
        self._keys, self._by_kid = other._keys, other._by_kid
        self._signers, self._verify_registries = other._signers, other._verify_registries
        self._jwks = other._jwks
        self._verified = {}  # a token of a key that left must not verify from memory

    @classmethod
    def from_directory(cls, directory: Path | str, *,
                       retire_after: float | None = None) -> KeyRing:
        """Load every ``*.pem`` in the key directory, refusing the lot if any file is bad.

        All problems are reported at once so an operator fixes them in one go.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise KeyError_(f"key directory {directory} does not exist or is not a directory")
        keys: list[SigningKey] = []
        problems: list[str] = []
        for path in sorted(directory.glob("*.pem")):
            key, file_problems = load_key_file(path)
            if file_problems:
                problems.extend(f"{path}: {problem}" for problem in file_problems)
            elif key is not None:
                keys.append(key)
        seen: dict[str, Path | None] = {}
        for key in keys:
            if key.kid in seen:
                problems.append(f"{key.path}: same key as {seen[key.kid]}")
            seen[key.kid] = key.path
        if problems:
            raise KeyError_("bad signing key files:\n" + "\n".join(problems))
        if not keys:
            raise KeyError_(f"no *.pem signing keys in {directory}")
        return cls(keys, retire_after=retire_after)

    @classmethod
    def ephemeral(cls, algs: Iterable[str] = ("RS256", "ES256")) -> KeyRing:
        """Fresh in-memory keys for the demo and tests; they vanish with the process."""
        now = time.time()
        return cls(wrap_key(new_private_key(alg), alg, now) for alg in algs)

    # -- lookup ------------------------------------------------------------------------

    @property
    def algs(self) -> frozenset[str]:
        """The algorithms this ring can sign with."""
        return frozenset(self._signers)

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """Every key, newest first (for the CLI and status page)."""
        return self._keys

    def find(self, kid: str) -> SigningKey | None:
        """The key with this ``kid``, or None."""
        return self._by_kid.get(kid)

    def signing_key(self, alg: str, *, now: float | None = None) -> SigningKey:
        """The key that signs ``alg`` tokens now: the newest one whose time has come."""
        return self._signer(alg, time.time() if now is None else now).signing_key

    def _signer(self, alg: str, now: float) -> _Signer:
        signers = self._signers.get(alg)
        if not signers:
            raise KeyError_(f"no {alg} signing key")
        for signer in signers:
            if signer.signing_key.created <= now:
                return signer
        # Every key is dated ahead (a clock behind the key maker's): signing early beats
        # an outage, and the key is already published.
        return signers[-1]

    def jwks(self, *, now: float | None = None) -> dict[str, Any]:
        """The public JWK Set (RFC 7517) of every key not retired, newest first."""
        at = time.time() if now is None else now
        return {"keys": [dict(jwk) for key, jwk in zip(self._keys, self._jwks, strict=True)
                         if not self.retired(key, now=at)]}

    def retired(self, key: SigningKey, *, now: float | None = None) -> bool:
        """Whether a newer key of ``key``'s algorithm has signed for ``retire_after``."""
        if self.retire_after is None:
            return False
        at = time.time() if now is None else now
        return any(other.alg == key.alg and key.created < other.created
                   and other.created + self.retire_after <= at for other in self._keys)

    # -- tokens ------------------------------------------------------------------------

    def sign(self, claims: Mapping[str, Any], *, alg: str, typ: str = "JWT") -> str:
        """A compact JWS over ``claims`` with the current key of ``alg``.

        Claims must already be JSON values (times as integers): a date or a dataclass is
        a ``TypeError``, not a string. The header is ``{"alg", "kid", "typ"}``,
        pre-encoded per key, and the claims are written by orjson (compact UTF-8, as
        ``json.dumps`` would with ``ensure_ascii=False``, 20 times faster), because this
        runs for every token.
        """
        signer = self._signer(alg, time.time())
        payload = claims if isinstance(claims, dict) else dict(claims)  # orjson wants a dict
        text = orjson.dumps(payload, option=_CLAIMS_JSON)
        signing_input = signer.header_segment(typ) + b"." + urlsafe_b64encode(text)
        signature = signer.alg_model.sign(signing_input, signer.signing_key.key)
        return (signing_input + b"." + urlsafe_b64encode(signature)).decode("ascii")

    def verify(
        self,
        token: str,
        *,
        algs: Collection[str] = ("RS256", "ES256"),
        typ: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Check a token's signature against this ring; return ``(header, claims)``.

        The header's ``alg`` must be allowed and its ``kid`` must name a key of that very
        algorithm before any signature is checked. This checks the signature (and ``typ``)
        only: call ``validate_claims`` next. Pass ``typ`` whenever the kind of token matters
        (``at+jwt``, ``logout+jwt``) so one kind cannot stand in for another.

        A token that verified before (against these keys: adopting others forgets them)
        is not checked again, only its header against ``algs`` and ``typ``.
        """
        seen = self._verified.get(token)
        if seen is not None:
            header, claims = seen
            if header["alg"] in algs and (typ is None or _typ_matches(header.get("typ"), typ)):
                return dict(header), dict(claims)
        try:
            obj = jws.extract_compact(token.encode("ascii"))
        except (JoseError, ValueError, TypeError) as error:
            raise TokenError("malformed token") from error
        header = obj.headers()
        if not isinstance(header, dict):
            raise TokenError("malformed token")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS or alg not in algs:
            raise TokenError("token algorithm not allowed")
        if "crit" in header:
            raise TokenError("token has critical header parameters")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenError("token has no key id")
        key = self._by_kid.get(kid)
        if key is None:
            raise TokenError("token signed by an unknown key")
        if key.alg != alg:
            raise TokenError("token algorithm does not match its key")
        if typ is not None and not _typ_matches(header.get("typ"), typ):
            raise TokenError("wrong token type")
        try:
            valid = jws.validate_compact(obj, key.key, registry=self._verify_registries[alg])
        except (JoseError, ValueError, TypeError) as error:
            raise TokenError("invalid token") from error
        if not valid:
            raise TokenError("invalid token signature")
        try:
            claims = json.loads(obj.payload or b"", parse_constant=_refuse_constant)
        except ValueError as error:
            raise TokenError("malformed token payload") from error
        if not isinstance(claims, dict):
            raise TokenError("malformed token payload")
        remember(self._verified, token, (dict(header), dict(claims)), limit=VERIFIED_LIMIT)
        return dict(header), claims


def validate_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    audience: str | None,
    now: int | None = None,
    leeway: int = 30,
    required: Iterable[str] = ("iss", "exp", "iat"),
) -> None:
    """Check ``iss``, ``aud``, ``exp``, ``nbf`` and ``iat``; signature checks do not.

    ``iss`` must always equal ``issuer``. ``aud`` (a string, or a list holding it) must
    contain ``audience`` unless that is None. Times get ``leeway`` seconds of clock skew.
    """
    options: dict[str, ClaimsOption] = {name: {"essential": True} for name in required}
    options["iss"] = {"essential": True, "value": issuer}
    if audience is not None:
        options["aud"] = {"essential": True, "value": audience}
    registry = JWTClaimsRegistry(now=now, leeway=leeway, **options)
    try:
        registry.validate(dict(claims))
    except ExpiredTokenError as error:
        raise TokenError("token expired") from error
    except MissingClaimError as error:
        raise TokenError(f"token lacks claim(s): {error.claim}") from error
    except InvalidClaimError as error:
        raise TokenError(f"token claim {error.claim!r} is invalid") from error
    except JoseError as error:
        raise TokenError("token claims are invalid") from error


def _typ_matches(actual: object, expected: str) -> bool:
    """RFC 7515 4.1.9: media types compare case-insensitively, "application/" optional."""
    if not isinstance(actual, str):
        return False
    return _media_type(actual) == _media_type(expected)


def _media_type(value: str) -> str:
    value = value.lower()
    return value.removeprefix("application/")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
