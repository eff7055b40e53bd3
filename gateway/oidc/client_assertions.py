"""``private_key_jwt`` (RFC 7523 §2.2, OIDC Core §9): a client proves itself with a JWT it
signed with its own key, so the gateway keeps no secret of it at all.

The client's public keys are its registered ``jwks``, or its ``jwks_uri``, fetched
through the outbound guard (``gateway.outbound``: the URL is the client's, an SSRF
channel) and kept as long as the answer's ``Cache-Control: max-age`` says (60 s to a
day; 5 minutes without one). A ``kid`` the kept set lacks — the client rolled its key
over — fetches the set again at once; another such fetch waits ``REFETCH_EVERY`` seconds
(per client), so junk kids cannot make the gateway hammer the client's server.

An assertion is checked before authlib runs (``RoamAuthorizationServer._read_for_token``:
the keys may need I/O) and authlib's ``private_key_jwt`` method then only names the client
found: ``alg`` RS256 or ES256 with a key of that very type (``none`` and HMAC never),
``iss`` and ``sub`` the client, ``aud`` the token endpoint or the issuer, ``exp`` in the
future and at most ``MAX_LIFETIME`` ahead, and its ``jti`` used once — counted in the
store, so a replay fails in any process. Every refusal is ``invalid_client``; what
failed is logged, never the assertion.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import CompactSignature

from gateway.oidc.clients import Client, ClientRegistry
from gateway.outbound import OutboundPolicy, OutboundRefused
from gateway.store.base import Kind, Store

__all__ = ["ASSERTION_TYPE", "AssertionRefused", "ClientAssertions", "ClientKeys"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_LIFETIME = 3600  # seconds an assertion may claim to live from now (authlib signs 1 h)
LEEWAY = 60  # clock skew allowed on exp, nbf, iat
REFETCH_EVERY = 10.0  # seconds between two fetches forced by an unknown kid, per client
DEFAULT_MAX_AGE, MIN_MAX_AGE, MAX_MAX_AGE = 300, 60, 86400
MAX_JWKS_BYTES = 64 * 1024
_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}

log = logging.getLogger("roam.oauth")


class AssertionRefused(Exception):
    """Why an assertion is no proof (for the log; the client hears ``invalid_client``)."""


@dataclass
class _Kept:
    keys: KeySet
    until: float  # monotonic
    forced: float  # monotonic: the last fetch an unknown kid caused (-inf: none)


class ClientKeys:
    def __init__(self, http: httpx.AsyncClient, policy: OutboundPolicy, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.http = http
        self.policy = policy
        self.clock = clock
        self._kept: dict[str, _Kept] = {}

    async def key_set(self, client: Client, *, unknown_kid: bool = False) -> KeySet:
        """The client's keys; ``unknown_kid``: the kept set lacked one (fetch again if the
        last fetch is old enough). ``AssertionRefused`` if there are none to be had."""
        if client.config.jwks is not None:
            return _import(client.config.jwks)
        uri = client.config.jwks_uri
        if not uri:
            raise AssertionRefused("the client has neither jwks nor jwks_uri")
        now = self.clock()
        kept = self._kept.get(f"{client.client_id} {uri}")
        if kept is not None and now < kept.until and not (
                unknown_kid and now - kept.forced >= REFETCH_EVERY):
            return kept.keys
        try:
            body, headers = await self.policy.read(self.http, uri, limit=MAX_JWKS_BYTES)
        except OutboundRefused as error:
            raise AssertionRefused(f"jwks_uri refused by the outbound guard: {error}") from None
        except httpx.HTTPError as error:
            raise AssertionRefused(f"jwks_uri unreachable: {type(error).__name__}") from None
        try:
            keys = _import(json.loads(body))
        except ValueError as error:
            raise AssertionRefused(f"jwks_uri: not a JWK set ({error})") from None
        forced = now if unknown_kid else (kept.forced if kept else float("-inf"))
        self._kept[f"{client.client_id} {uri}"] = _Kept(keys, now + _max_age(headers), forced)
        return keys


def _import(data: object) -> KeySet:
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("no keys")
    public = {"keys": [k for k in data["keys"] if isinstance(k, dict) and "d" not in k]}
    try:
        return KeySet.import_key_set(public)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as error:  # KeyError: an odd crv
        raise ValueError(str(error)) from None


def _max_age(headers: httpx.Headers) -> float:
    control = headers.get("cache-control", "")
    if "no-store" in control or "no-cache" in control:
        return MIN_MAX_AGE
    found = re.search(r"max-age=(\d+)", control)
    age = int(found.group(1)) if found else DEFAULT_MAX_AGE
    return float(min(MAX_MAX_AGE, max(MIN_MAX_AGE, age)))


class ClientAssertions:
    def __init__(self, clients: ClientRegistry, keys: ClientKeys, store: Store, *,
                 audiences: frozenset[str], clock: Callable[[], float] = time.time) -> None:
        self.clients = clients
        self.keys = keys
        self.store = store
        self.audiences = audiences  # the token endpoint's URL and the issuer
        self.clock = clock

    @staticmethod
    def present(form: Mapping[str, str]) -> bool:
        """Whether the request authenticates with an assertion."""
        return "client_assertion" in form or "client_assertion_type" in form

    async def authenticate(self, form: Mapping[str, str]) -> Client | None:
        """The client the form's assertion proves, or None (logged)."""
        try:
            return await self._check(form)
        except AssertionRefused as error:
            log.info("client assertion refused", extra={
                "client_id": str(form.get("client_id", ""))[:64], "cause": str(error)})
            return None

    async def _check(self, form: Mapping[str, str]) -> Client:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise AssertionRefused("client_assertion_type is not jwt-bearer")
        try:  # parsed once: the header, the claims, then the signature over them
            obj = jws.extract_compact(form.get("client_assertion", "").encode("ascii"))
            claims = json.loads(obj.payload or b"")
        except (JoseError, ValueError, UnicodeError) as error:
            raise AssertionRefused(f"malformed assertion ({type(error).__name__})") from None
        header = obj.headers()
        alg = header.get("alg")
        if alg not in _KEY_TYPES or "crit" in header:
            raise AssertionRefused(f"alg {alg!r} is not RS256 or ES256")
        if not isinstance(claims, dict):
            raise AssertionRefused("the claims are not a JSON object")
        issuer = claims.get("iss")  # trusted only once the signature checks
        await self.clients.ensure(issuer if isinstance(issuer, str) else None)
        client = self.clients.get(issuer if isinstance(issuer, str) else None)
        if client is None or client.config.token_endpoint_auth_method != "private_key_jwt":
            raise AssertionRefused("no client that authenticates with private_key_jwt")
        if form.get("client_id") not in (None, "", client.client_id):
            raise AssertionRefused("client_id is another client's")
        await self._verify(client, obj, alg, header.get("kid"))
        self._check_claims(client, claims)
        await self._use_once(client, claims)
        return client

    async def _verify(self, client: Client, obj: CompactSignature, alg: str,
                      kid: object) -> None:
        keys = await self.keys.key_set(client)
        if isinstance(kid, str) and _by_kid(keys, kid) is None:
            keys = await self.keys.key_set(client, unknown_kid=True)  # rolled over?
        key = _key_for(keys, kid, alg)
        try:
            valid = jws.validate_compact(obj, key, algorithms=[alg])
        except (JoseError, ValueError) as error:
            raise AssertionRefused(f"bad signature ({type(error).__name__})") from None
        if not valid:
            raise AssertionRefused("bad signature")

    def _check_claims(self, client: Client, claims: Mapping[str, Any]) -> None:
        now = self.clock()
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise AssertionRefused("iss and sub must both be the client_id")
        aud = claims.get("aud")
        audiences = set(aud) if isinstance(aud, list) else {aud}
        if not audiences & self.audiences:
            raise AssertionRefused("aud is not the token endpoint")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool) or exp + LEEWAY < now:
            raise AssertionRefused("exp missing or past")
        if exp > now + MAX_LIFETIME + LEEWAY:
            raise AssertionRefused(f"exp more than {MAX_LIFETIME} s ahead")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if isinstance(value, int | float) and value > now + LEEWAY:
                raise AssertionRefused(f"{name} in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 8 <= len(jti) <= 256:
            raise AssertionRefused("jti missing")

    async def _use_once(self, client: Client, claims: Mapping[str, Any]) -> None:
        digest = hashlib.sha256(f"{client.client_id}\x1f{claims['jti']}".encode()).hexdigest()
        ttl = max(1, int(float(claims["exp"]) - self.clock()) + LEEWAY)
        counted = await self.store.incr(Kind.CLIENT_ASSERTION, digest, ttl)
        if counted.value != 1:
            raise AssertionRefused("assertion replayed (jti seen)")


def _by_kid(keys: KeySet, kid: str) -> Any:
    return next((key for key in keys.keys if key.kid == kid), None)


def _key_for(keys: KeySet, kid: object, alg: str) -> Any:
    """The one key the header names (by ``kid``, or the set's only key of the type)."""
    wanted = _KEY_TYPES[alg]
    if isinstance(kid, str):
        key = _by_kid(keys, kid)
        if key is None:
            raise AssertionRefused("kid not in the client's keys")
    else:
        of_type = [k for k in keys.keys if k.key_type == wanted]
        if len(of_type) != 1:
            raise AssertionRefused("no kid, and not exactly one key of the type")
        key = of_type[0]
    if key.key_type != wanted:  # an RSA key cannot check ES256, nor the reverse
        raise AssertionRefused(f"the key is {key.key_type}, not for {alg}")
    return key
