"""The gateway's browser session: an opaque cookie, its data in the store.

The cookie carries a random secret; the store keys the record by the secret's SHA-256,
so a leaked store dump cannot be replayed as cookies. The public ``sid`` (sent to RPs in
ID tokens) is a different random value. Idle and absolute timeouts both bound the TTL.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.config import SessionSection, is_loopback_http
from gateway.identity import Identity
from gateway.oidc.grant import new_id
from gateway.store.base import Store

KIND = "session"


def _key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class Session:
    sid: str  # public id, safe to hand to RPs
    identity: Identity
    created: int
    last_seen: int
    clients: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "identity": self.identity.to_dict(),
            "created": self.created,
            "last_seen": self.last_seen,
            "clients": list(self.clients),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        return cls(
            sid=data["sid"],
            identity=Identity.from_dict(data["identity"]),
            created=int(data["created"]),
            last_seen=int(data["last_seen"]),
            clients=list(data.get("clients", [])),
        )


class SessionManager:
    def __init__(self, store: Store, settings: SessionSection, *, issuer: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings
        self.secure_cookie = not is_loopback_http(issuer)
        self.clock = clock

    @property
    def cookie_name(self) -> str:
        return self.settings.cookie_name

    def _ttl(self, session: Session, now: int) -> int:
        remaining = session.created + self.settings.absolute_timeout - now
        return min(self.settings.idle_timeout, remaining)

    async def load(self, request: Request) -> Session | None:
        """The live session of this browser, touched (idle timer restarted), or None."""
        secret = request.cookies.get(self.cookie_name)
        if not secret:
            return None
        data = await self.store.find(KIND, _key(secret))
        if data is None:
            return None
        session = Session.from_dict(data)
        now = int(self.clock())
        ttl = self._ttl(session, now)
        if ttl <= 0 or now - session.last_seen > self.settings.idle_timeout:
            await self.store.destroy(KIND, _key(secret))
            return None
        if now - session.last_seen >= 5:  # avoid a write per request in a burst
            session.last_seen = now
            await self.store.upsert(KIND, _key(secret), session.to_dict(), ttl)
        return session

    async def start(self, identity: Identity, response: Response, *,
                    previous: Request | None = None) -> Session:
        """A new session (always a new secret: no session fixation) and its cookie."""
        if previous is not None:
            await self.end(previous)
        now = int(self.clock())
        session = Session(sid=new_id(16), identity=identity, created=now, last_seen=now)
        secret = new_id(32)
        await self.store.upsert(KIND, _key(secret), session.to_dict(), self._ttl(session, now))
        response.set_cookie(
            self.cookie_name,
            secret,
            max_age=self.settings.absolute_timeout,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure_cookie,
        )
        return session

    async def record_client(self, request: Request, session: Session, client_id: str) -> None:
        """Remember which RPs this session has been used with (for logout everywhere)."""
        secret = request.cookies.get(self.cookie_name)
        if not secret or client_id in session.clients:
            return
        session.clients.append(client_id)
        ttl = self._ttl(session, int(self.clock()))
        if ttl > 0:
            await self.store.upsert(KIND, _key(secret), session.to_dict(), ttl)

    async def end(self, request: Request) -> None:
        secret = request.cookies.get(self.cookie_name)
        if secret:
            await self.store.destroy(KIND, _key(secret))

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(self.cookie_name, path="/", httponly=True, samesite="lax",
                               secure=self.secure_cookie)
