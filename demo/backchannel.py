"""The demo RP's side of Back-Channel Logout 1.0: receive, validate, remember.

The gateway POSTs a logout token here when a session ends anywhere. An RP keeps its
session in a cookie, and a cookie cannot be cleared from a request the browser never
makes, so the receiver only remembers which gateway sessions (``sid``) — or, for a token
without ``sid``, which subjects — ended and when; the RP checks that record on each
browser request. Validation follows §2.6 of the spec step by step, using joserfc against
the gateway's published JWKS, so a gateway that signs or shapes tokens wrongly fails here
as it would at any careful RP. Failures answer 400 and change nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["ALGORITHMS", "EVENT", "BackchannelReceiver", "InvalidLogoutToken"]

log = logging.getLogger("roam.demo.backchannel")

EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: Only the gateway's signing algorithms; never ``none``, never HMAC.
ALGORITHMS = ("RS256", "ES256")
_TYPES = ("logout+jwt", "application/logout+jwt")  # media types compare case-insensitively
_MAX_TOKEN = 8192  # a logout token is well under 2 kB; refuse to parse anything huge
_NO_STORE = {"Cache-Control": "no-store"}
_FORM = "application/x-www-form-urlencoded"

JwksLoader = Callable[[bool], Awaitable[Mapping[str, Any]]]


class InvalidLogoutToken(Exception):
    """The token failed a §2.6 check; the message says which (logged, never sent)."""


class BackchannelReceiver:
    """One RP's back-channel logout endpoint and its record of ended sessions.

    ``jwks`` returns the gateway's JWK Set; called with ``True`` it must refetch (a
    rotated key). Forced refetches are spaced ``refresh_interval`` apart so forged tokens
    with made-up ``kid``s cannot make the RP hammer the gateway. ``max_age`` bounds how
    old ``iat`` may be; ``jti``s are remembered that long (older tokens fail anyway).

    ``tokens`` keeps every accepted raw token, oldest first: the demo's tests verify
    them independently against the JWKS.
    """

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        jwks: JwksLoader,
        max_age: int = 300,
        leeway: int = 30,
        remember_for: int = 8 * 3600,
        refresh_interval: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.jwks = jwks
        self.max_age = max_age
        self.leeway = leeway
        self.remember_for = remember_for
        self.refresh_interval = refresh_interval
        self.clock = clock
        self.tokens: list[str] = []
        self.sids: dict[str, float] = {}  # sid -> when its logout arrived
        self.subs: dict[str, float] = {}  # sub -> when a sid-less logout arrived
        self._jtis: dict[str, float] = {}  # jti -> when it arrived (replay check)
        self._last_refresh = float("-inf")

    # -- the endpoint ------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """``POST /backchannel-logout``: 200 and remembered, or 400 and nothing changed."""
        try:
            token = await _logout_token_field(request)
            claims = await self.validate(token)
            self._accept(token, claims)  # no await between the replay check and the record
        except InvalidLogoutToken as error:
            log.info("%s: logout token refused: %s", self.client_id, error)
            return JSONResponse({"error": "invalid_request"}, status_code=400,
                                headers=_NO_STORE)
        log.info("%s: back-channel logout sid=%s jti=%s", self.client_id,
                 claims.get("sid"), claims["jti"])
        return Response(status_code=200, headers=_NO_STORE)

    # -- validation (OpenID Connect Back-Channel Logout 1.0 §2.6) ----------------------

    async def validate(self, token: str) -> dict[str, Any]:
        """The token's claims if every §2.6 check passes; else ``InvalidLogoutToken``.

        Does not remember anything: ``handle`` does that after a successful check.
        """
        if not token or len(token) > _MAX_TOKEN:
            raise InvalidLogoutToken("empty or oversized token")
        header = _header(token)
        alg = header.get("alg")
        if alg not in ALGORITHMS:  # before any key is touched: none/HMAC never get further
            raise InvalidLogoutToken(f"algorithm {alg!r} not allowed")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _TYPES:
            raise InvalidLogoutToken(f"typ {typ!r} is not logout+jwt")
        claims = await self._verified_claims(token)
        self._check_claims(claims)
        return claims

    async def _verified_claims(self, token: str) -> dict[str, Any]:
        registry = jws.JWSRegistry(algorithms=list(ALGORITHMS), strict_check_header=False)
        for force in (False, True):
            if force and self.clock() - self._last_refresh < self.refresh_interval:
                break
            if force:
                self._last_refresh = self.clock()
            try:
                keys = KeySet.import_key_set(dict(await self.jwks(force)))  # type: ignore[arg-type]
            except (httpx.HTTPError, RuntimeError, JoseError, ValueError, TypeError,
                    KeyError) as error:  # unreachable gateway or a JWKS that is not one
                raise InvalidLogoutToken(f"cannot load the gateway's JWKS: {error!r}") from None
            try:
                return dict(jwt.decode(token, keys, registry=registry).claims)
            except InvalidKeyIdError:
                continue  # maybe a key published since we last looked
            except (JoseError, ValueError, TypeError) as error:
                raise InvalidLogoutToken(f"signature check failed: {error}") from None
        raise InvalidLogoutToken("signed by a key the gateway does not publish")

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        now = int(self.clock())
        registry = jwt.JWTClaimsRegistry(
            now=now, leeway=self.leeway,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            iat={"essential": True},
            jti={"essential": True},
        )  # exp and nbf are checked when present
        try:
            registry.validate(dict(claims))
        except JoseError as error:
            raise InvalidLogoutToken(f"claims: {error}") from None
        if now - claims["iat"] > self.max_age + self.leeway:
            raise InvalidLogoutToken("iat too old")
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(EVENT), dict):
            raise InvalidLogoutToken("events lacks the back-channel logout event")
        sid, sub = claims.get("sid"), claims.get("sub")
        if sid is None and sub is None:
            raise InvalidLogoutToken("neither sid nor sub")
        for name, value in (("sid", sid), ("sub", sub)):
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidLogoutToken(f"{name} is not a non-empty string")
        if "nonce" in claims:  # §2.4: would let an ID token pass as a logout token
            raise InvalidLogoutToken("a logout token must not carry a nonce")
        if claims["jti"] in self._jtis:
            raise InvalidLogoutToken("jti already seen (replay)")

    # -- the record --------------------------------------------------------------------

    def _accept(self, token: str, claims: Mapping[str, Any]) -> None:
        now = self.clock()
        self._forget_old(now)
        jti = str(claims["jti"])
        if jti in self._jtis:  # checked in validate; checked again with no await since
            raise InvalidLogoutToken("jti already seen (replay)")
        self._jtis[jti] = now
        sid = claims.get("sid")
        if isinstance(sid, str):
            self.sids.setdefault(sid, now)
        else:  # §2.7: no sid means every session of this subject at this RP
            self.subs[str(claims["sub"])] = now
        self.tokens.append(token)

    def _forget_old(self, now: float) -> None:
        """Drop jtis too old to pass the iat check anyway, and logouts no session outlives."""
        jti_horizon = now - (self.max_age + 2 * self.leeway)
        for jti in [j for j, at in self._jtis.items() if at < jti_horizon]:
            del self._jtis[jti]
        horizon = now - self.remember_for
        for record in (self.sids, self.subs):
            for key in [k for k, at in record.items() if at < horizon]:
                del record[key]

    def logged_out_at(self, *, sid: str, sub: str, since: float) -> float | None:
        """When the RP session (gateway ``sid``, ``sub``, logged in at ``since``) ended.

        None while it is still live. A subject-wide logout ends only sessions that began
        before it arrived.
        """
        at = self.sids.get(sid) if sid else None
        if at is not None:
            return at
        at = self.subs.get(sub) if sub else None
        if at is not None and since <= at:
            return at
        return None


async def _logout_token_field(request: Request) -> str:
    """The one ``logout_token`` of a form POST (§2.5); anything else is a bad request."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != _FORM:
        raise InvalidLogoutToken("not application/x-www-form-urlencoded")
    try:
        form = await request.form(max_fields=10)
    except (HTTPException, MultiPartException):
        raise InvalidLogoutToken("unreadable form") from None
    values = form.getlist("logout_token")
    if len(values) != 1 or not isinstance(values[0], str):
        raise InvalidLogoutToken("exactly one logout_token form field is required")
    return values[0]


def _header(token: str) -> dict[str, Any]:
    """The protected header, read before any verification to refuse bad algs early."""
    try:
        header = jws.extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, TypeError, UnicodeError):
        raise InvalidLogoutToken("not a compact JWS") from None
    if not isinstance(header, dict):
        raise InvalidLogoutToken("not a compact JWS")
    return dict(header)
