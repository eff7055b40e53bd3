"""Whether an issued token is still good, beyond its signature and ``exp``.

A token is active while its grant record exists (code replay, refresh reuse, logout and
revocation remove it), its ``jti`` is not on the revocation list, and — unless the grant
has ``offline_access`` — the session it was issued in is alive. Userinfo, introspection
and the refresh grant all ask here, so the three can never disagree.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gateway.oidc.grant import Grant
from gateway.oidc.people import People
from gateway.oidc.subjects import Subjects
from gateway.sessions import Session, SessionManager
from gateway.store.base import Kind, Store

__all__ = ["ActiveTokens"]


async def _nothing() -> None:
    return None


class ActiveTokens:
    def __init__(self, store: Store, sessions: SessionManager, people: People,
                 subjects: Subjects) -> None:
        self.store = store
        self.sessions = sessions
        self.people = people  # where a grant's claims are kept (the grant has none)
        self.subjects = subjects  # the sub each client sees

    def subject_seen(self, grant: Grant) -> str:
        """The ``sub`` the grant's client was told (``gateway.oidc.subjects``)."""
        return self.subjects.of_client_id(grant.client_id, grant.identity.subject)

    async def check_session(self, grant: Grant) -> tuple[bool, Session | None]:
        """Whether the grant may still be used, and the session that keeps it alive.

        Offline grants (and grants made outside a session) need none: ``(True, None)``.
        """
        if grant.offline or not grant.sid:
            return True, None
        session = await self.sessions.find(grant.sid)
        return session is not None, session

    async def grant(self, grant_id: str) -> Grant | None:
        """The issued grant; None if revoked, expired, or still pending (code not redeemed)."""
        data = await self.store.find(Kind.GRANT, grant_id)
        if data is None:
            return None
        grant = Grant.from_dict(data)
        return grant if grant.issued else None

    async def grant_of_access_token(self, claims: dict[str, Any]) -> Grant | None:
        """The grant behind a verified access token, with its person's claims; None if the
        token is no longer good.

        The grant, the revocation list and the session the token names (its ``sid``) are
        read at once: one round trip to the store instead of three, on every
        introspection and userinfo call. The session read is only believed when it is
        the grant's own; an offline grant does not need it."""
        jti = claims.get("jti")
        sid = claims.get("sid")
        grant, revoked, session = await asyncio.gather(
            self.grant(str(claims.get("gid", ""))),
            self.store.find(Kind.REVOKED_ACCESS_TOKEN, jti) if isinstance(jti, str)
            else _nothing(),
            self.sessions.find(sid) if isinstance(sid, str) and sid else _nothing())
        if grant is None or self.subject_seen(grant) != claims.get("sub"):
            return None
        if grant.client_id != claims.get("client_id") or revoked is not None:
            return None
        if grant.offline or not grant.sid:
            session = None
        elif sid != grant.sid:  # not minted from this grant: ask for the grant's own
            alive, session = await self.check_session(grant)
            if not alive:
                return None
        elif session is None:
            return None
        if session is not None:
            await self.sessions.touch(session)
        return await self.people.fill(grant, session)

    async def revoke_access_token(self, claims: dict[str, Any]) -> None:
        """Deny one access token until it expires anyway (a JWT cannot be recalled)."""
        jti = claims.get("jti")
        remaining = int(claims.get("exp", 0)) - int(time.time()) + 60
        if isinstance(jti, str) and remaining > 0:
            await self.store.upsert(Kind.REVOKED_ACCESS_TOKEN, jti, {"grant_id": claims.get("gid")},
                                    remaining)

    async def revoke_grant(self, grant_id: str) -> int:
        return await self.store.revoke_by_grant(grant_id)
