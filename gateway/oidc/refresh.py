"""Refresh tokens: ``<grant_id>.<secret>``, rotated by one compare-and-swap on the grant.

No record per refresh token: the grant record's *version* (``gateway.store.base``) names
the grant's one current token, as ``<session_checked_until>.<sha256 of the token>``. A
refresh reads the grant (one command), authlib checks the request, and ``advance`` swaps
the version (one more): exactly one of any number of racing uses wins, and a token the
grant retired — a replay, or the loser of a race — revokes the grant. The store holds
digests only, so a dump of it cannot be replayed as a refresh token.

The session check is skipped while it cannot change the answer. Logging out, revoking or
another person's login revoke the session's grants outright, so the only thing a lookup
can still catch is the session running out of time. Each check records when the session
would run out at the earliest (``session_checked_until``); until half an idle timeout
before that, no lookup is made. An RP refreshing at least every half idle timeout keeps
the session alive, since every check counts as activity (``SessionManager.touch``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.oidc.active import GRANT_KIND, ActiveTokens
from gateway.oidc.clients import Client
from gateway.oidc.grant import Grant, new_id
from gateway.sessions import Session
from gateway.store.base import Versioned

_TOKEN = re.compile(r"(?P<grant_id>[A-Za-z0-9_-]{16,64})\.[A-Za-z0-9_-]{32,64}")


def new_refresh_token(grant_id: str) -> str:
    return f"{grant_id}.{new_id(32)}"


def grant_id_of(token: str) -> str | None:
    """The grant a well-formed refresh token names (not yet proof that it is current)."""
    match = _TOKEN.fullmatch(token)
    return match["grant_id"] if match else None


def token_digest(token: str) -> str:
    raw = hashlib.sha256(token.encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class RefreshVersion:
    """What a grant record's version says about its current refresh token."""

    digest: str
    session_checked_until: int  # 0: look the session up on the next refresh

    def encode(self) -> str:
        return f"{self.session_checked_until}.{self.digest}"

    @classmethod
    def decode(cls, version: str) -> RefreshVersion | None:
        until, _, digest = version.partition(".")
        if not until.isdigit() or not digest:
            return None
        return cls(digest, int(until))

    def names(self, digest: str) -> bool:
        return hmac.compare_digest(self.digest, digest)


@dataclass(frozen=True)
class PresentedToken:
    """A refresh token found on its grant: current, or retired by an earlier rotation."""

    token: str
    grant: Grant
    version: str  # the grant's version as read: what ``advance`` expects
    retired: bool
    session_checked_until: int  # for the version of the token that replaces this one

    # authlib's view of a refresh token
    def check_client(self, client: Client) -> bool:
        return bool(client.client_id == self.grant.client_id)

    def get_scope(self) -> str:
        return self.grant.scope  # RFC 6749 §6: a rotated token keeps the original scope

    def is_expired(self) -> bool:
        return False  # the grant record's TTL already hides expired grants

    def is_revoked(self) -> bool:
        return False  # revoked grants are removed from the store


class RefreshTokens:
    def __init__(self, active: ActiveTokens, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.active = active
        self.store = active.store
        self.settings = active.sessions.settings
        self.clock = clock

    def first_version(self, token: str) -> str:
        """The version of a grant's first refresh token (its session is checked on use)."""
        return RefreshVersion(token_digest(token), 0).encode()

    def next_version(self, presented: PresentedToken, token: str) -> str:
        return RefreshVersion(token_digest(token), presented.session_checked_until).encode()

    async def read(self, token: str) -> tuple[PresentedToken | None,
                                              Callable[[], Awaitable[None]] | None]:
        """The token on its grant if the grant and session are alive, and the session's
        touch to run once the refresh succeeds (None when the session was not looked up)."""
        found = await self._find(token)
        if found is None:
            return None, None
        versioned, retired = found
        grant = Grant.from_dict(versioned.payload)
        current = RefreshVersion.decode(versioned.version)
        checked_until = current.session_checked_until if current else 0
        touch = None
        if not retired and self._must_check(grant, checked_until):
            alive, session = await self.active.check_session(grant)
            if not alive or session is None:
                return None, None
            checked_until = self._alive_until(session)
            touch = _touch(self.active, session)
        return PresentedToken(token, grant, versioned.version, retired, checked_until), touch

    async def lookup(self, token: str) -> tuple[Grant, bool] | None:
        """Revocation and introspection: the grant of a *current* token and whether its
        session is alive (looking is not activity); None for retired or unknown ones."""
        found = await self._find(token)
        if found is None or found[1]:
            return None
        grant = Grant.from_dict(found[0].payload)
        alive, _ = await self.active.check_session(grant)
        return grant, alive

    async def _find(self, token: str) -> tuple[Versioned, bool] | None:
        grant_id = grant_id_of(token)
        if grant_id is None:
            return None
        versioned = await self.store.find_versioned(GRANT_KIND, grant_id)
        if versioned is None:
            return None
        digest = token_digest(token)
        current = RefreshVersion.decode(versioned.version)
        if current is not None and current.names(digest):
            return versioned, False
        for old in versioned.previous:
            retired = RefreshVersion.decode(old)
            if retired is not None and retired.names(digest):
                return versioned, True
        return None

    def _must_check(self, grant: Grant, checked_until: int) -> bool:
        if grant.offline or not grant.sid:
            return False  # such grants outlive their session (only its logout ends them)
        return self.clock() + self.settings.idle_timeout / 2 >= checked_until

    def _alive_until(self, session: Session) -> int:
        """The earliest the session can run out of time (its last activity as read)."""
        return min(session.last_seen + self.settings.idle_timeout,
                   session.created + self.settings.absolute_timeout)


def _touch(active: ActiveTokens, session: Session) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await active.sessions.touch(session)

    return run
