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
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from gateway.ids import new_id
from gateway.oidc.active import ActiveTokens
from gateway.oidc.clients import Client
from gateway.oidc.grant import Grant
from gateway.sessions import Session
from gateway.store.base import Advance, Kind

__all__ = ["NEVER", "Description", "PresentedToken", "RefreshTokens", "Touch", "token_digest"]

NEVER = -1
"""``session_until`` of grants no session lookup can end (offline, or made without one)."""

_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,1024}\.[A-Za-z0-9_-]{43}")


def token_digest(token: str) -> str:
    raw = hashlib.sha256(token.encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


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
    def __init__(self, active: ActiveTokens, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.active = active
        self.store = active.store
        self.settings = active.sessions.settings
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

    async def rotate(self, presented: PresentedToken,
                     next_token: str) -> tuple[Grant, Advance] | None:
        """Swap the grant's current token for ``next_token`` if ``presented`` is it."""
        found = await self.store.advance(Kind.GRANT, presented.description.grant_id,
                                         token_digest(presented.token),
                                         token_digest(next_token))
        if found is None:
            return None
        payload, outcome = found
        return Grant.from_dict(payload), outcome

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
