"""The gateway's browser session: one per browser, shared by every RP it logs into.

The cookie is ``<sid>.<secret>``: the store keeps the session under its public ``sid``
(the ID token's ``sid`` claim, so logout can find it) and only the SHA-256 of the secret,
so neither a store dump nor a leaked ``sid`` can be replayed as a cookie. The secret is
rotated whenever the person authenticates again (no session fixation); the ``sid`` stays,
so RPs keep recognising the session through re-authentication and step-up.

Records it writes (``grant_id`` puts them in the store's grant index):

- ``session/<sid>`` — the session, in group ``sub:<subject>`` (ops can list a subject's
  sessions);
- ``session_rp/<sid>.<mode>.<client>`` — one per client the session authorized (``on``
  for its grant that ends with the session, ``off`` for its ``offline_access`` grant), in
  group ``sid:<sid>``: which grant that client holds in this session, so authorizing again
  reuses it (Keycloak's client session) and logout finds every RP and grant of the
  session. It lives as long as the session can, and its version is the grant's id, so
  pointing it at another grant is a compare-and-swap (``gateway.oidc.client_grants``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from gateway.config import SessionSection
from gateway.cookies import cookie_value, host_cookie_name
from gateway.digests import secret_digest, secret_matches
from gateway.identity import Identity
from gateway.ids import new_id
from gateway.memo import remember
from gateway.store.base import Kind, Store, load_payload
from gateway.urls import is_loopback_http

__all__ = [
    "DECODED_KEPT",
    "Session",
    "SessionLink",
    "SessionManager",
    "Timed",
    "cookie_parts",
    "link_id",
    "session_group",
    "subject_group",
]

DECODED_KEPT = 4096  # decoded session records remembered per process (a few MB at most)


def subject_group(subject: str) -> str:
    return f"sub:{subject}"


def session_group(sid: str) -> str:
    return f"sid:{sid}"


def cookie_parts(value: str) -> tuple[str, str] | None:
    """A session cookie's ``<id>.<secret>``: the id the store keeps it under and the
    secret only its digest is kept of; None for anything else."""
    sid, _, secret = value.partition(".")
    return (sid, secret) if sid and secret else None


class Timed(Protocol):
    """What the timeouts look at: when a session's login was, when it was last used."""

    @property
    def created(self) -> int: ...

    @property
    def last_seen(self) -> int: ...


@dataclass(frozen=True)
class Session:
    sid: str  # public id, safe to hand to RPs
    identity: Identity
    created: int
    last_seen: int
    secret_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "identity": self.identity.to_dict(),
            "created": self.created,
            "last_seen": self.last_seen,
            "secret_sha256": self.secret_sha256,
            "grant_id": subject_group(self.identity.subject),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        return cls(
            sid=data["sid"],
            identity=Identity.from_dict(data["identity"]),
            created=int(data["created"]),
            last_seen=int(data["last_seen"]),
            secret_sha256=str(data.get("secret_sha256", "")),
        )


@dataclass(frozen=True)
class SessionLink:
    """The grant one client holds in a session (one of each kind at most)."""

    client_id: str
    grant_id: str
    created: int
    offline: bool
    until: int = 0  # the session's absolute end when it was written: the record's life


def link_id(sid: str, client_id: str, *, offline: bool) -> str:
    """``<sid>.<on|off>.<client>``: the sid and the mode have no dots, so the client id
    (which may) is all the rest."""
    return f"{sid}.{'off' if offline else 'on'}.{client_id}"


class SessionManager:
    def __init__(self, store: Store, settings: SessionSection, *, issuer: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings
        self.secure_cookie = not is_loopback_http(issuer)
        self.clock = clock
        self.cookie_name = host_cookie_name(settings.cookie_name, secure=self.secure_cookie,
                                            domain=settings.cookie_domain)
        self._decoded: dict[str | bytes, Session] = {}  # stored text -> session (_read)

    def ttl(self, session: Timed, now: int) -> int:
        """Seconds ``session`` (or a host session) may still live: idle and absolute."""
        return min(self.settings.idle_timeout, self.deadline(session) - now)

    def deadline(self, session: Timed) -> int:
        """When the session ends at the latest (its absolute timeout), epoch seconds."""
        return session.created + self.settings.absolute_timeout

    def expired(self, session: Timed, now: int) -> bool:
        return (self.ttl(session, now) <= 0
                or now - session.last_seen > self.settings.idle_timeout)

    async def _read(self, sid: str) -> Session | None:
        """The stored session, decoded once per distinct stored text.

        Every proxied request reads its session; decoding it was ~4 % of the proxy's CPU.
        The store is still asked every time — only the decoding is remembered, keyed by the
        exact text — so a logout or a change anywhere is seen at once.
        """
        text = await self.store.find_text(Kind.SESSION, sid)
        if text is None:
            return None
        session = self._decoded.get(text)
        if session is None:
            session = remember(self._decoded, text, Session.from_dict(load_payload(text)),
                               limit=DECODED_KEPT)
        return session

    async def find(self, sid: str) -> Session | None:
        """The live session with this public id, without touching it (logout, refresh)."""
        session = await self._read(sid)
        if session is None:
            return None
        return None if self.expired(session, int(self.clock())) else session

    async def touch(self, session: Session, *, every: int = 60) -> None:
        """RP activity (a refresh) counts as activity: restart the idle timer, at most once
        a minute so the token endpoint does not write a session per request."""
        now = int(self.clock())
        if now - session.last_seen < every:
            return
        ttl = self.ttl(session, now)
        if ttl > 0:
            touched = replace(session, last_seen=now)
            await self.store.upsert(Kind.SESSION, session.sid, touched.to_dict(), ttl)

    def _cookie(self, request: Request) -> str:
        return cookie_value(request.headers.get("cookie", ""), self.cookie_name)

    def sid_of(self, request: Request) -> str | None:
        """The session id this browser's cookie names, unchecked: no store read, no
        secret compared. Only for reading ahead what a checked session will need."""
        parts = cookie_parts(self._cookie(request))
        return None if parts is None else parts[0]

    async def load(self, request: Request) -> Session | None:
        """This browser's live session, touched (idle timer restarted), or None."""
        return await self.load_cookie(self._cookie(request))

    async def load_cookie(self, value: str) -> Session | None:
        """As :meth:`load`, from the session cookie's value."""
        parts = cookie_parts(value)
        if parts is None:
            return None
        sid, secret = parts
        session = await self._read(sid)
        if session is None or not secret_matches(session.secret_sha256, secret):
            return None
        now = int(self.clock())
        if self.expired(session, now):
            await self.store.destroy(Kind.SESSION, sid)
            return None
        if now - session.last_seen >= 5:  # avoid a write per request in a burst
            session = replace(session, last_seen=now)
            await self.store.upsert(Kind.SESSION, sid, session.to_dict(), self.ttl(session, now))
        return session

    async def start(self, identity: Identity, response: Response, *,
                    current: Session | None = None) -> Session:
        """Log ``identity`` in: the current session if it is the same person, else a new one.

        A new secret is issued either way. A session of someone else is *not* ended here:
        the caller logs it out properly (RPs must hear of it).
        """
        now = int(self.clock())
        if current is not None and current.identity.subject == identity.subject:
            session = Session(sid=current.sid, identity=identity, created=now, last_seen=now)
        else:
            session = Session(sid=new_id(16), identity=identity, created=now, last_seen=now)
        return await self._save_with_new_secret(session, response, now)

    async def elevate(self, session: Session, identity: Identity, response: Response) -> Session:
        """Step-up: same session and sid, higher level, fresh secret; the clock keeps running."""
        now = int(self.clock())
        raised = Session(sid=session.sid, identity=identity, created=session.created,
                         last_seen=now)
        return await self._save_with_new_secret(raised, response, now)

    async def _save_with_new_secret(self, session: Session, response: Response,
                                    now: int) -> Session:
        secret = new_id(32)
        session = replace(session, secret_sha256=secret_digest(secret))
        await self.store.upsert(Kind.SESSION, session.sid, session.to_dict(),
                                self.ttl(session, now))
        response.set_cookie(
            self.cookie_name,
            f"{session.sid}.{secret}",
            max_age=self.settings.absolute_timeout,
            path="/",
            domain=self.settings.cookie_domain,
            httponly=True,
            samesite="lax",
            secure=self.secure_cookie,
        )
        return session

    async def find_link(self, sid: str, client_id: str, *,
                        offline: bool) -> SessionLink | None:
        """The grant ``client_id`` holds in the session, if it authorized there before."""
        found = await self.store.find(Kind.SESSION_LINK,
                                      link_id(sid, client_id, offline=offline))
        return None if found is None else _link(found)

    async def swap_link(self, sid: str, client_id: str, grant_id: str, *, offline: bool,
                        until: int, expected: str | None, created: int | None = None) -> bool:
        """Point the session's link for ``client_id`` at ``grant_id`` if it still points at
        ``expected`` (None: if there is none); False if another request changed it first.
        It lives until ``until``, the session's absolute end."""
        now = int(self.clock())
        payload = {
            "grant_id": session_group(sid),
            "client_id": client_id,
            "rp_grant_id": grant_id,
            "created": now if created is None else created,
            "offline": offline,
            "until": until,
        }
        return await self.store.swap(Kind.SESSION_LINK, link_id(sid, client_id, offline=offline),
                                     payload, max(1, until - now), expected=expected,
                                     version=grant_id)

    async def links(self, sid: str) -> list[SessionLink]:
        """Every RP authorization of the session, oldest first."""
        found = await self.store.find_by_grant(session_group(sid))
        links = [_link(p) for kind, _, p in found if kind == Kind.SESSION_LINK]
        return sorted(links, key=lambda link: (link.created, link.client_id))

    async def sessions_of(self, subject: str) -> list[Session]:
        """Every live session of a person (ops: "log out this subject everywhere")."""
        found = await self.store.find_by_grant(subject_group(subject))
        now = int(self.clock())
        sessions = [Session.from_dict(p) for kind, _, p in found if kind == Kind.SESSION]
        return [s for s in sessions if not self.expired(s, now)]

    async def destroy(self, sid: str) -> None:
        """Forget the session and its links (the caller revokes the grants first)."""
        await self.store.destroy(Kind.SESSION, sid)
        await self.store.revoke_by_grant(session_group(sid))

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(self.cookie_name, path="/", domain=self.settings.cookie_domain,
                               httponly=True, samesite="lax", secure=self.secure_cookie)


def _link(payload: dict[str, Any]) -> SessionLink:
    return SessionLink(client_id=payload["client_id"], grant_id=payload["rp_grant_id"],
                       created=int(payload["created"]), offline=bool(payload.get("offline")),
                       until=int(payload.get("until", 0)))
