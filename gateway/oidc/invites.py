"""Initial access tokens (RFC 7591 §3): an operator invites the systems of one city or
county to register (``roam clients invite --region 430100 --expires 7d --uses 1``).

The token is 256 random bits shown once; the store keeps its SHA-256 with the region,
how many registrations it allows and who issued it, for as long as it lasts. A use is
counted atomically (``incr``), so a single-use token makes one client however many
processes race with it; a registration refused for its metadata gives its use back.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from gateway.digests import secret_digest
from gateway.store.base import Kind, Store

__all__ = ["Invite", "Invites"]

MAX_TTL = 365 * 86400


@dataclass(frozen=True)
class Invite:
    id: str  # the token's digest: how logs and the audit name it
    region: str
    uses: int
    by: str
    expires_at: int


class Invites:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def issue(self, region: str, *, expires_in: int, uses: int, by: str
                    ) -> tuple[str, Invite]:
        """A new token and what it allows (the token itself is never stored)."""
        if not 0 < expires_in <= MAX_TTL:
            raise ValueError(f"an invitation lasts between 1 s and {MAX_TTL // 86400} days")
        if not 0 < uses <= 1000:
            raise ValueError("an invitation allows between 1 and 1000 registrations")
        token = secrets.token_urlsafe(32)
        invite = Invite(secret_digest(token), region, uses, by, int(time.time()) + expires_in)
        await self.store.upsert(Kind.REGISTRATION_INVITE, invite.id, {
            "region": region, "uses": uses, "by": by, "expires_at": invite.expires_at},
            expires_in)
        return token, invite

    async def find(self, token: str) -> Invite | None:
        """The invitation ``token`` is, if it lasts and has uses left (nothing taken)."""
        if not token or len(token) > 256:
            return None
        invite = await self._read(secret_digest(token))
        if invite is None:
            return None
        used = await self.store.incr(Kind.REGISTRATION_INVITE_USES, invite.id, 1, by=0)
        return invite if used.value < invite.uses else None

    async def take(self, invite: Invite) -> bool:
        """Count one use; False if the uses were all taken meanwhile."""
        left = invite.expires_at - int(time.time())
        if left <= 0:
            return False
        used = await self.store.incr(Kind.REGISTRATION_INVITE_USES, invite.id, left)
        if used.value <= invite.uses:
            return True
        await self.give_back(invite)
        return False

    async def give_back(self, invite: Invite) -> None:
        left = max(1, invite.expires_at - int(time.time()))
        await self.store.incr(Kind.REGISTRATION_INVITE_USES, invite.id, left, by=-1)

    async def _read(self, digest: str) -> Invite | None:
        payload = await self.store.find(Kind.REGISTRATION_INVITE, digest)
        if payload is None:
            return None
        return Invite(digest, str(payload["region"]), int(payload["uses"]), str(payload["by"]),
                      int(payload["expires_at"]))
