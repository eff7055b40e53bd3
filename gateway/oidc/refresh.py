"""Refresh tokens: self-describing handles, rotated by one compare-and-swap on the grant.

A refresh token is ``<description>.<secret>``: the description (base64url JSON) says which
grant, client, scope and session it belongs to, and until when its session is known to be
alive. Nothing in it is trusted on its own. The grant record's *version*
(``gateway.store.base``) is the SHA-256 of the grant's one current token, so when the
store's ``advance`` swaps that version for the next token's, it proves in the same atomic
step that the whole token — description included — is the current one. A refresh is
therefore a single store call: authlib checks the request against the description, the
swap proves it and returns the grant, authlib issues. Exactly one of any number of racing
uses wins; a token the grant retired (a replay, or the loser of a race) revokes the grant;
a token never issued changes nothing. The store holds digests only.

A rotation whose answer is lost (a timeout, a process killed, a stalled Redis that runs
the swap later) must not cost the grant, so a token just rotated may be presented again
for ``[tokens] refresh_reuse_interval`` seconds (Hydra's ``refresh_token_reuse_interval``,
Okta's grace period): it gets the same new token back, not a revocation. The swap leaves
that token in the store sealed with a key derived from the one presented (AES-GCM under
HMAC-SHA256 of it), so only a holder of the rotated token can read it, and the store
still holds nothing usable by itself. Concurrent copies of one token all get the same new
one; replay outside the window, or of an older token, still revokes the grant.

The session is looked up only while that can change the answer. Logging out, revoking or
another person's login revoke the session's grants outright, so a lookup can only catch
the session running out of time. Each check writes into the next token when the session
would run out at the earliest (``session_until``); until half an idle timeout before then
no lookup is made. An RP refreshing at least every half idle timeout therefore keeps the
session alive: every check counts as activity (``SessionManager.touch``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.ids import new_id
from gateway.oidc.active import ActiveTokens
from gateway.oidc.clients import Client
from gateway.oidc.grant import Grant
from gateway.sessions import Session
from gateway.store.base import Advance, Kind

__all__ = ["NEVER", "Description", "PresentedToken", "RefreshTokens", "Rotated", "Touch",
           "seal_next", "token_digest", "unseal_next"]

NEVER = -1
"""``session_until`` of grants no session lookup can end (offline, or made without one)."""

_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,1024}\.[A-Za-z0-9_-]{43}")


def token_digest(token: str) -> str:
    raw = hashlib.sha256(token.encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _sealing_key(presented: str) -> AESGCM:
    # HMAC-SHA256 keyed by the token (256 random bits in its secret part) as the KDF, one
    # block for one key: HKDF's extract step alone, a third of cryptography's HKDF object
    # on every refresh
    return AESGCM(hmac.digest(presented.encode(), b"roam refresh-token reuse v1", "sha256"))


def seal_next(presented: str, next_token: str, grant_id: str) -> str:
    """``next_token``, readable only with ``presented`` (the token it replaces)."""
    nonce = os.urandom(12)
    sealed = _sealing_key(presented).encrypt(nonce, next_token.encode(), grant_id.encode())
    return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()


def unseal_next(presented: str, memo: str, grant_id: str) -> str | None:
    """What :func:`seal_next` sealed; None if ``memo`` was not sealed with ``presented``."""
    try:
        raw = base64.urlsafe_b64decode(memo + "=" * (-len(memo) % 4))
        return _sealing_key(presented).decrypt(raw[:12], raw[12:], grant_id.encode()).decode()
    except (binascii.Error, ValueError, InvalidTag):
        return None


@dataclass(frozen=True)
class Rotated:
    """A rotation that proved the token: the grant, and the token that now follows it —
    the caller's own (``"advanced"``), or the one an earlier use of the same token got
    (``"repeated"``, within the reuse window)."""

    grant: Grant
    outcome: Advance
    next_token: str


@dataclass(frozen=True)
class Description:
    """What a refresh token says of itself: believed once its digest is the grant's."""

    grant_id: str
    client_id: str
    scope: str
    sid: str | None
    session_until: int  # epoch seconds, 0: check on next use, NEVER: no check
    jkt: str | None = None  # DPoP (RFC 9449): the thumbprint of the key it is bound to

    def token(self) -> str:
        fields: list[Any] = [self.grant_id, self.client_id, self.scope, self.sid,
                             self.session_until]
        if self.jkt:
            fields.append(self.jkt)
        text = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
        return f"{base64.urlsafe_b64encode(text).rstrip(b'=').decode()}.{new_id(32)}"

    @classmethod
    def of(cls, token: str) -> Description | None:
        if not _SHAPE.fullmatch(token):
            return None
        head = token.partition(".")[0]
        try:
            fields = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
        except (binascii.Error, ValueError):
            return None
        if not (isinstance(fields, list) and len(fields) in (5, 6)
                and all(isinstance(f, str) for f in fields[:3])
                and (fields[3] is None or isinstance(fields[3], str))
                and isinstance(fields[4], int) and not isinstance(fields[4], bool)
                and all(isinstance(f, str) and f for f in fields[5:])):
            return None
        return cls(*fields)


@dataclass(frozen=True)
class PresentedToken:
    """A refresh token as authlib's refresh grant sees it (``check_client``, scope)."""

    token: str
    description: Description

    def check_client(self, client: Client) -> bool:
        return bool(client.client_id == self.description.client_id)

    def get_scope(self) -> str:
        return self.description.scope  # RFC 6749 §6: rotation keeps the original scope

    def is_expired(self) -> bool:
        return False  # the grant record's TTL is the refresh lifetime

    def is_revoked(self) -> bool:
        return False  # revoked grants are gone from the store: ``advance`` says so


Touch = Callable[[], Awaitable[None]]


class RefreshTokens:
    def __init__(self, active: ActiveTokens, *, reuse_interval: float = 0,
                 clock: Callable[[], float] = time.time) -> None:
        self.active = active
        self.store = active.store
        self.settings = active.sessions.settings
        self.reuse_interval = reuse_interval  # seconds a rotated token may come again
        self.clock = clock

    def first(self, grant: Grant, *, jkt: str | None = None) -> str:
        """The first refresh token of a grant; its session is checked on first use.
        ``jkt``: bound to that DPoP key, as every token rotated from it."""
        until = NEVER if grant.offline or not grant.sid else 0
        return Description(grant.grant_id, grant.client_id, grant.scope, grant.sid,
                           until, jkt).token()

    async def present(self, token: str) -> tuple[PresentedToken | None, Touch | None]:
        """The token as presented, if its session may still be alive, and the session's
        touch to run once the refresh succeeds (None if the session was not looked up).
        No store call unless the session has to be looked up."""
        description = Description.of(token)
        if description is None:
            return None, None
        until = description.session_until
        if until == NEVER or self.clock() + self.settings.idle_timeout / 2 < until:
            return PresentedToken(token, description), None
        session = await self.active.sessions.find(description.sid or "")
        if session is None:
            return None, None
        checked = replace(description, session_until=self._alive_until(session))
        return PresentedToken(token, checked), partial(self.active.sessions.touch, session)

    def next_token(self, presented: PresentedToken) -> str:
        return presented.description.token()

    async def rotate(self, presented: PresentedToken, next_token: str) -> Rotated | None:
        """Swap the grant's current token for ``next_token`` if ``presented`` is it; within
        the reuse window after it was swapped, the token that replaced it. None: no such
        grant (revoked, expired)."""
        grant_id = presented.description.grant_id
        memo = ""
        if self.reuse_interval > 0:
            memo = seal_next(presented.token, next_token, grant_id)
        found = await self.store.advance(Kind.GRANT, grant_id, token_digest(presented.token),
                                         token_digest(next_token), memo=memo,
                                         reuse_for=self.reuse_interval)
        if found is None:
            return None
        grant = Grant.from_dict(found.payload)
        if found.outcome != "repeated":
            return Rotated(grant, found.outcome, next_token)
        earlier = unseal_next(presented.token, found.memo, grant_id)
        if earlier is None:  # not sealed with this token: a record no rotation wrote
            return Rotated(grant, "unknown", next_token)
        return Rotated(grant, "repeated", earlier)

    async def lookup(self, token: str) -> tuple[Grant, bool] | None:
        """Revocation and introspection: the grant of a *current* token and whether its
        session is alive (looking is not activity); None for retired or unknown ones."""
        description = Description.of(token)
        if description is None:
            return None
        found = await self.store.find_versioned(Kind.GRANT, description.grant_id)
        if found is None or not hmac.compare_digest(found.version, token_digest(token)):
            return None
        grant = Grant.from_dict(found.payload)
        alive, _ = await self.active.check_session(grant)
        return grant, alive

    def _alive_until(self, session: Session) -> int:
        """The earliest the session can run out of time (its last activity as read)."""
        return min(session.last_seen + self.settings.idle_timeout,
                   session.created + self.settings.absolute_timeout)
