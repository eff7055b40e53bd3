"""What a client may register (RFC 7591 §2, OpenID Connect Registration §2): the metadata
a request sends, checked and normalised, or a :class:`RegistrationRefused` naming the
RFC 7591 §3.2.2 error.

Unknown metadata is ignored (RFC 7591 §2). What the gateway serves is limited to what it
supports: the code flow (``authorization_code``, ``refresh_token``), web clients,
``client_secret_basic``/``client_secret_post``/``private_key_jwt``/``none``, RS256 or
ES256 ID tokens signed with a key the gateway has. Redirect URIs are https (plain http
only to a loopback host, and only when the issuer itself is on loopback: the demo and
tests), never with a fragment. URLs the gateway will call — ``backchannel_logout_uri``,
``jwks_uri``, ``sector_identifier_uri`` — pass the outbound guard now, and the
``sector_identifier_uri`` is fetched: a JSON array that must list every redirect URI
(Registration §5). ``client_name`` is shown to citizens, so it is Chinese.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import ValidationError

from gateway.config import ClientConfig, Config
from gateway.errors import ConfigError
from gateway.identity import LEVELS, SCOPE_CLAIMS
from gateway.outbound import OutboundPolicy, OutboundRefused
from gateway.urls import is_loopback_http

__all__ = [
    "MetadataRules",
    "RegistrationRefused",
    "check_reachable",
    "read_metadata",
    "statement_keys",
]

GRANT_TYPES = ("authorization_code", "refresh_token")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
DESCRIPTIVE = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
MAX_SECTOR_BYTES = 64 * 1024
_CJK = re.compile(r"[\u3400-\u9fff]")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NOT_OURS = ("registration_access_token", "registration_client_uri", "client_secret",
             "client_secret_expires_at", "client_id_issued_at", "client_id")


class RegistrationRefused(Exception):
    """An RFC 7591 §3.2.2 error: ``invalid_redirect_uri``, ``invalid_client_metadata``,
    ``invalid_software_statement`` or ``unapproved_software_statement``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _metadata(description: str) -> RegistrationRefused:
    return RegistrationRefused("invalid_client_metadata", description)


@dataclass(frozen=True)
class MetadataRules:
    """What this gateway accepts, from its config and keys."""

    algs: frozenset[str]  # ID token algorithms the gateway has keys for
    loopback_issuer: bool  # the demo and tests: http redirect URIs to loopback allowed
    pairwise: bool  # the gateway's secret lasts (pairwise subjects stay stable)
    statement_keys: Mapping[str, KeySet] = field(default_factory=dict)  # iss -> keys


def statement_keys(config: Config) -> dict[str, KeySet]:
    """The keys of the issuers whose software statements registrations may carry
    (``[registration] software_statement_issuers``: issuer → a JWK set file)."""
    keys: dict[str, KeySet] = {}
    problems = []
    for issuer, name in config.settings.registration.software_statement_issuers.items():
        try:
            keys[issuer] = KeySet.import_key_set(
                json.loads(config.path(name).read_text("utf-8")))
        except (OSError, ValueError, TypeError, JoseError) as error:
            problems.append(f"{config.source}: registration.software_statement_issuers: "
                            f"{issuer}: {name}: not a readable JWK set ({type(error).__name__})")
    if problems:
        raise ConfigError(problems)
    return keys


def read_metadata(body: Mapping[str, Any], rules: MetadataRules) -> dict[str, Any]:
    """The registration's metadata, checked and normalised (defaults filled in).
    Everything that needs no network; :func:`check_reachable` does the rest."""
    body = dict(body)
    statement = body.pop("software_statement", None)
    if statement is not None:
        body.update(_software_statement(statement, rules))  # §2.3: the statement wins
    meta: dict[str, Any] = {}
    meta["redirect_uris"] = _redirect_uris(body.get("redirect_uris"), rules)
    meta["post_logout_redirect_uris"] = _uris(body, "post_logout_redirect_uris", rules)
    method = body.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise _metadata(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
    meta["token_endpoint_auth_method"] = method
    meta["grant_types"] = _listed(body, "grant_types", GRANT_TYPES, default=GRANT_TYPES)
    meta["response_types"] = _listed(body, "response_types", ("code",), default=("code",))
    if "authorization_code" not in meta["grant_types"]:
        raise _metadata("grant_types must include authorization_code (the code flow)")
    if body.get("application_type", "web") != "web":
        raise _metadata("application_type: only web clients register here")
    meta["client_name"] = _client_name(body)
    meta["scope"], meta["claims"] = _scope_and_claims(body)
    alg = body.get("id_token_signed_response_alg", "RS256")
    if alg not in ("RS256", "ES256") or alg not in rules.algs:
        raise _metadata(f"id_token_signed_response_alg: the gateway signs ID tokens with "
                        f"{', '.join(sorted(rules.algs & {'RS256', 'ES256'}))}")
    meta["id_token_signed_response_alg"] = alg
    access_alg = body.get("access_token_signed_response_alg")
    if access_alg is not None:
        if access_alg not in ("RS256", "ES256") or access_alg not in rules.algs:
            raise _metadata("access_token_signed_response_alg: RS256 or ES256, one the "
                            "gateway has a key for")
        meta["access_token_signed_response_alg"] = access_alg
    meta["default_acr_values"] = _listed(body, "default_acr_values", LEVELS, default=())
    meta["contacts"] = _contacts(body.get("contacts", []))
    for name in ("backchannel_logout_uri", "initiate_login_uri", "jwks_uri",
                 "sector_identifier_uri", *DESCRIPTIVE):
        if body.get(name) is not None:
            meta[name] = _url(body[name], name, rules)
    if "backchannel_logout_session_required" in body:
        if not isinstance(body["backchannel_logout_session_required"], bool):
            raise _metadata("backchannel_logout_session_required must be true or false")
        meta["backchannel_logout_session_required"] = body["backchannel_logout_session_required"]
    if body.get("jwks") is not None:
        meta["jwks"] = _public_jwks(body["jwks"])
    subject_type = body.get("subject_type", "public")
    if subject_type not in ("public", "pairwise"):
        raise _metadata("subject_type must be public or pairwise")
    if subject_type == "pairwise" and not rules.pairwise:
        raise _metadata("subject_type pairwise is not offered: the gateway has no lasting "
                        "secret to derive pairwise subjects with")
    meta["subject_type"] = subject_type
    for name in ("software_id", "software_version"):
        if body.get(name) is not None:
            meta[name] = _text(body[name], name, 128)
    _check_whole(meta)
    return meta


async def check_reachable(meta: Mapping[str, Any], policy: OutboundPolicy,
                          http: httpx.AsyncClient) -> None:
    """The URLs the gateway will call pass the outbound guard, and the
    ``sector_identifier_uri`` lists every redirect URI."""
    for name in ("backchannel_logout_uri", "jwks_uri"):
        if meta.get(name):
            try:
                await policy.check(meta[name])
            except OutboundRefused as error:
                raise _metadata(f"{name}: refused ({error})") from None
    sector = meta.get("sector_identifier_uri")
    if sector:
        listed = await _sector_uris(sector, policy, http)
        missing = [u for u in meta["redirect_uris"] if u not in listed]
        if missing:
            raise _metadata(f"sector_identifier_uri does not list the redirect URIs {missing}")


async def _sector_uris(uri: str, policy: OutboundPolicy, http: httpx.AsyncClient
                       ) -> set[str]:
    try:
        body, _ = await policy.read(http, uri, limit=MAX_SECTOR_BYTES)
    except OutboundRefused as refused:
        raise _metadata(f"sector_identifier_uri {refused}") from None
    except httpx.HTTPError as error:
        raise _metadata(f"sector_identifier_uri unreachable ({type(error).__name__})") from None
    try:
        listed = json.loads(body)
    except ValueError:
        listed = None
    if not isinstance(listed, list) or not all(isinstance(u, str) for u in listed):
        raise _metadata("sector_identifier_uri must hold a JSON array of URIs")
    return set(listed)


def _software_statement(statement: object, rules: MetadataRules) -> dict[str, Any]:
    if not isinstance(statement, str) or statement.count(".") != 2:
        raise RegistrationRefused("invalid_software_statement",
                                  "software_statement must be a signed JWT")
    try:
        unverified = json.loads(_b64(statement.split(".")[1]))
    except ValueError:
        raise RegistrationRefused("invalid_software_statement",
                                  "software_statement is not a JWT") from None
    issuer = unverified.get("iss") if isinstance(unverified, dict) else None
    keys = rules.statement_keys.get(issuer) if isinstance(issuer, str) else None
    if not isinstance(issuer, str):
        keys = None
    if keys is None:
        raise RegistrationRefused("unapproved_software_statement",
                                  "software_statement is from an issuer this gateway does "
                                  "not trust")
    try:
        token = jwt.decode(statement, keys, algorithms=["RS256", "ES256"])
        jwt.JWTClaimsRegistry(iss={"essential": True, "value": str(issuer)}).validate(
            token.claims)
    except (JoseError, ValueError) as error:
        raise RegistrationRefused("invalid_software_statement",
                                  f"software_statement does not verify ({type(error).__name__})"
                                  ) from None
    return {k: v for k, v in token.claims.items()
            if k not in ("iss", "iat", "exp", "nbf", "jti", "aud", "sub")}


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _redirect_uris(value: object, rules: MetadataRules) -> list[str]:
    if not isinstance(value, list) or not value:
        raise RegistrationRefused("invalid_redirect_uri",
                                  "redirect_uris: at least one URI is required")
    try:
        return _checked_uris(value, rules, "redirect_uris")
    except RegistrationRefused as refused:
        raise RegistrationRefused("invalid_redirect_uri", refused.description) from None


def _uris(body: Mapping[str, Any], name: str, rules: MetadataRules) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list):
        raise _metadata(f"{name} must be an array of URIs")
    return _checked_uris(value, rules, name)


def _checked_uris(value: Iterable[object], rules: MetadataRules, name: str) -> list[str]:
    uris = [_url(uri, name, rules) for uri in value]
    if len(uris) > 20:
        raise _metadata(f"{name}: at most 20")
    return list(dict.fromkeys(uris))


def _url(value: object, name: str, rules: MetadataRules) -> str:
    if not isinstance(value, str) or len(value) > 2000 or _CONTROL.search(value):
        raise _metadata(f"{name}: not a URI")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise _metadata(f"{name}: not a URI") from None
    if parts.fragment or "#" in value:
        raise _metadata(f"{name}: {value!r} must not have a fragment")
    try:
        parts.port  # noqa: B018 - urllib checks the port only when asked
    except ValueError:
        raise _metadata(f"{name}: {value!r} has a port that is not one") from None
    if parts.scheme == "http" and is_loopback_http(value) and rules.loopback_issuer:
        return value
    if parts.scheme != "https" or not parts.hostname:
        raise _metadata(f"{name}: {value!r} must be an https URL")
    return value


def _listed(body: Mapping[str, Any], name: str, allowed: Iterable[str],
            default: Iterable[str]) -> list[str]:
    value = body.get(name, list(default))
    allowed = tuple(allowed)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _metadata(f"{name} must be an array of strings")
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise _metadata(f"{name}: {unknown} not supported (supported: {list(allowed)})")
    return list(dict.fromkeys(value))


def _client_name(body: Mapping[str, Any]) -> str:
    name = body.get("client_name")
    for tag in ("client_name#zh-CN", "client_name#zh-Hans-CN", "client_name#zh"):
        if name is None:
            name = body.get(tag)
    name = _text(name, "client_name", 64)
    if not _CJK.search(name):
        raise _metadata("client_name is shown to citizens: give it in Chinese")
    return name


def _text(value: object, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit \
            or _CONTROL.search(value):
        raise _metadata(f"{name}: a string of 1 to {limit} characters is required")
    return value.strip()


def _scope_and_claims(body: Mapping[str, Any]) -> tuple[str, list[str]]:
    scope = body.get("scope", "openid")
    if not isinstance(scope, str):
        raise _metadata("scope must be a space-separated string")
    scopes = list(dict.fromkeys(["openid", *scope.split()]))
    unknown = [s for s in scopes if s not in SCOPE_CLAIMS]
    if unknown:
        raise _metadata(f"scope: unknown {unknown} (known: {sorted(SCOPE_CLAIMS)})")
    releasable = {c for s in scopes for c in SCOPE_CLAIMS[s]}
    claims = body.get("claims")
    if claims is None:
        return " ".join(scopes), sorted(releasable)
    if not isinstance(claims, list) or not all(isinstance(c, str) for c in claims):
        raise _metadata("claims must be an array of claim names")
    beyond = [c for c in claims if c not in releasable]
    if beyond:
        raise _metadata(f"claims: {beyond} are not released by the scopes asked for")
    return " ".join(scopes), list(dict.fromkeys(claims))


def _contacts(value: object) -> list[str]:
    if not isinstance(value, list) or len(value) > 10 or not all(
            isinstance(c, str) and _EMAIL.match(c) for c in value):
        raise _metadata("contacts must be an array of at most 10 e-mail addresses")
    return list(value)


def _public_jwks(value: object) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list) \
            or not value["keys"]:
        raise _metadata("jwks must be a JWK set with keys")
    if any(not isinstance(k, dict) or "d" in k or k.get("kty") not in ("RSA", "EC")
           or (k.get("kty") == "EC" and k.get("crv") != "P-256") for k in value["keys"]):
        raise _metadata("jwks: only public RSA keys or EC keys on P-256 (RS256, ES256)")
    try:
        KeySet.import_key_set(value)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as error:  # KeyError: an odd crv
        raise _metadata(f"jwks: not a JWK set ({type(error).__name__})") from None
    return {"keys": list(value["keys"])}


def _check_whole(meta: dict[str, Any]) -> None:
    """The rules across fields, as clients.toml checks them (gateway.config.clients)."""
    keyed = meta["token_endpoint_auth_method"] == "private_key_jwt"
    if (meta.get("jwks") is None) == (meta.get("jwks_uri") is None) and keyed:
        raise _metadata("private_key_jwt: give jwks or jwks_uri, one of them")
    if not keyed and (meta.get("jwks") or meta.get("jwks_uri")):
        raise _metadata("jwks and jwks_uri are for private_key_jwt")
    try:
        config = ClientConfig.model_validate({
            "client_id": "checking", "client_name": meta["client_name"],
            "public": meta["token_endpoint_auth_method"] == "none",
            "client_secret_sha256": None if keyed or meta["token_endpoint_auth_method"] ==
            "none" else "0" * 64,
            **{k: meta[k] for k in ("redirect_uris", "post_logout_redirect_uris",
                                    "token_endpoint_auth_method", "grant_types",
                                    "id_token_signed_response_alg", "default_acr_values",
                                    "subject_type")},
            **{k: meta[k] for k in ("backchannel_logout_uri", "initiate_login_uri", "jwks",
                                    "jwks_uri", "sector_identifier_uri") if k in meta},
            "scopes": meta["scope"].split(), "claims": meta["claims"]})
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _metadata(f"{where}: {first['msg']}") from None
    problems = config.consistency_problems()
    if problems:
        raise _metadata(problems[0])
