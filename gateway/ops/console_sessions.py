"""Operators' sessions: apart from citizens' in every way that matters.

Their own cookie (``__Host-roam_ops`` under https, ``SameSite=Strict``: the console is
never entered from another site), their own store records (``ops_session``), and their
own clock: 15 minutes idle at most (等保 2.0 for administrators), an absolute limit on top.
As for citizens, the cookie is ``<sid>.<secret>`` and the store keeps only the secret's
digest. A citizen's session gives nothing here, and an operator's nothing there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from gateway.cookies import cookie_value, host_cookie_name
from gateway.digests import secret_digest, secret_matches
from gateway.ids import new_id
from gateway.ops.operators import Operator, Role
from gateway.sessions import cookie_parts
from gateway.store.base import Kind, Store

__all__ = ["OPS_COOKIE", "ConsoleSession", "ConsoleSessions"]

OPS_COOKIE = "roam_ops"


@dataclass(frozen=True)
class ConsoleSession:
    sid: str
    operator: str
    role: Role
    created: int

    @property
    def may_change(self) -> bool:
        return self.role is Role.OPERATOR


class ConsoleSessions:
    def __init__(self, store: Store, *, secure: bool, idle_timeout: int,
                 absolute_timeout: int, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.secure = secure
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout
        self.clock = clock
        self.cookie_name = host_cookie_name(OPS_COOKIE, secure=secure)

    def _ttl(self, created: int, now: int) -> int:
        """Idle time left, never past the absolute limit; 0: over."""
        return max(0, min(self.idle_timeout, created + self.absolute_timeout - now))

    async def start(self, operator: Operator, response: Response) -> ConsoleSession:
        now = int(self.clock())
        session = ConsoleSession(new_id(16), operator.name, operator.role, now)
        secret = new_id(32)
        await self.store.upsert(Kind.OPS_SESSION, session.sid, {
            "operator": operator.name, "role": operator.role.value, "created": now,
            "secret_sha256": secret_digest(secret)}, self._ttl(now, now))
        response.set_cookie(self.cookie_name, f"{session.sid}.{secret}", path="/",
                            httponly=True, samesite="strict", secure=self.secure)
        return session

    async def load(self, request: Request) -> ConsoleSession | None:
        """The operator's live session, its idle clock restarted; None when there is none
        or it timed out (the store's TTL is the idle timeout)."""
        value = cookie_value(request.headers.get("cookie", ""), self.cookie_name)
        parts = cookie_parts(value)
        if parts is None:
            return None
        sid, secret = parts
        data = await self.store.find(Kind.OPS_SESSION, sid)
        if data is None or not secret_matches(str(data.get("secret_sha256", "")), secret):
            return None
        now, created = int(self.clock()), int(data["created"])
        ttl = self._ttl(created, now)
        if ttl <= 0:
            await self.store.destroy(Kind.OPS_SESSION, sid)
            return None
        await self.store.upsert(Kind.OPS_SESSION, sid, data, ttl)
        return ConsoleSession(sid, str(data["operator"]), Role(str(data["role"])), created)

    async def end(self, session: ConsoleSession, response: Response) -> None:
        await self.store.destroy(Kind.OPS_SESSION, session.sid)
        self.clear(response)

    def clear(self, response: Response) -> None:
        response.delete_cookie(self.cookie_name, path="/", httponly=True, samesite="strict",
                               secure=self.secure)
