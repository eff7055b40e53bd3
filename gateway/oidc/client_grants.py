"""One grant per client and session: authorizing again reuses it (Keycloak's client session).

An RP that sends the browser through ``/authorize`` on every page, or a client looping
``prompt=none``, must not leave a grant per round trip. The session's link for the
client (``SessionManager.find_link``) names the grant that client holds in the session,
and a new code belongs to that grant: redeeming it replaces the grant's record (scope,
identity, refresh token) under the same id. So the client's earlier access tokens stay
good until they expire, and its earlier refresh token is stale (``invalid_grant``, with
no revocation), as in Keycloak. An ``offline_access`` grant is the client's other one.

A grant that was revoked (a code replayed, a refresh token used twice, RFC 7009) is never
brought back, or its revoked tokens would be good again: its link still names it but its
record is gone, so the code gets a new grant and the link is swapped to it — compare-and-
swap, so requests racing agree on one grant and a loser's code is rewritten to the
winner's. A new grant's record is written, pending, before any link names it, and a
redemption only replaces a live record (``gateway.oidc.server``), so a logout in between
wins. Records: the pending grant lives until the session's absolute end (the grant cannot
outlive it unless offline), the link as long as the session can.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from gateway.errors import StoreError
from gateway.ids import new_id
from gateway.oidc.codes import StoredCode
from gateway.sessions import SessionLink, SessionManager
from gateway.store.base import Kind, Store

__all__ = ["ClientGrants", "LinkAhead"]

ATTEMPTS = 3  # swaps lost in a row before giving up (each loss is another request's win)


@dataclass(frozen=True)
class LinkAhead:
    """A session link read while the session itself was (``/authorize`` reads both in one
    round trip): used by :meth:`ClientGrants.place` only for the very same link."""

    sid: str
    client_id: str
    offline: bool
    link: SessionLink | None

    @classmethod
    async def read(cls, sessions: SessionManager, sid: str, client_id: str, *,
                   offline: bool) -> LinkAhead:
        return cls(sid, client_id, offline,
                   await sessions.find_link(sid, client_id, offline=offline))


class ClientGrants:
    def __init__(self, store: Store, sessions: SessionManager, *, code_ttl: int,
                 grace: int, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.sessions = sessions
        self.code_ttl = code_ttl
        self.grace = grace  # seconds a pending grant outlives its code, at least
        self.clock = clock

    async def place(self, stored: StoredCode, ahead: LinkAhead | None = None) -> StoredCode:
        """Write the code, under the grant its client holds in the session (a new one if
        none is live), and return it as written. ``ahead``: that link, read already.
        ``StoreError`` if racing requests kept winning (503)."""
        grant = stored.grant
        if not grant.sid:
            raise ValueError("a code is made in a session")
        if ahead is not None and (ahead.sid, ahead.client_id, ahead.offline) == (
                grant.sid, grant.client_id, grant.offline):
            link = ahead.link  # as fresh as a read here: the swap below is compare-and-swap
        else:
            link = await self.sessions.find_link(grant.sid, grant.client_id,
                                                 offline=grant.offline)
        for _ in range(ATTEMPTS):
            if link is not None:
                code = _under(stored, link.grant_id)
                live, _ = await asyncio.gather(
                    self.store.find_text(Kind.GRANT, link.grant_id), self._write(code))
                if live is not None:
                    await self._extend(link, code)
                    return code
            code = _under(stored, new_id(16))
            await asyncio.gather(self._write_pending(code), self._write(code))
            if await self.sessions.swap_link(
                    grant.sid, grant.client_id, code.grant.grant_id, offline=grant.offline,
                    until=grant.until, expected=link.grant_id if link else None):
                await self._unless_logged_out(code)
                return code
            # another request placed a grant first: ours is never named, so never used
            await self.store.destroy(Kind.GRANT, code.grant.grant_id)
            link = await self.sessions.find_link(grant.sid, grant.client_id,
                                                 offline=grant.offline)
        raise StoreError("concurrent authorizations kept replacing the client's grant")

    async def _unless_logged_out(self, code: StoredCode) -> None:
        """A logout that read the session's links before this one was written would miss
        the new grant: look again now that the link is in the session's group (a logout
        after this look finds it there), and if the session is gone, so is the grant —
        its code is then refused at the token endpoint."""
        sid = code.grant.sid or ""
        if await self.sessions.find(sid) is None:
            await self.store.revoke_by_grant(code.grant.grant_id)
            await self.sessions.destroy(sid)  # and the link just written

    async def _write(self, code: StoredCode) -> None:
        await self.store.upsert(Kind.CODE, code.code, code.to_dict(), self.code_ttl)

    async def _write_pending(self, code: StoredCode) -> None:
        grant = code.grant
        left = grant.until - int(self.clock())
        if grant.offline:  # redeemed as late as its code allows, then it outlives the session
            left = max(left, self.code_ttl + self.grace)
        await self.store.upsert(Kind.GRANT, grant.grant_id, grant.record(), max(1, left))

    async def _extend(self, link: SessionLink, code: StoredCode) -> None:
        """A new login in the session moved its end later: the link lives to the new end
        (the grant does from its next redemption)."""
        grant = code.grant
        if link.until < grant.until:
            await self.sessions.swap_link(grant.sid or "", grant.client_id, link.grant_id,
                                          offline=grant.offline, until=grant.until,
                                          expected=link.grant_id, created=link.created)


def _under(stored: StoredCode, grant_id: str) -> StoredCode:
    return replace(stored, grant=replace(stored.grant, grant_id=grant_id))
