"""Sessions on a proxied system's own host, handed over from the issuer by a one-time hop.

A system served on a host of its own (``systems.toml`` ``hosts``) never sees the issuer's
session cookie: browsers keep a host-only cookie to its host, and the issuer's cookie is
host-only too. So a browser arriving at ``gjj.example`` without a session there makes one
hop, as oauth2-proxy and Pomerium hand a session to each protected route:

1. the system's host sets a short-lived *state* cookie (one per hop, so two tabs do not
   spoil each other's) and sends the browser to the issuer's
   ``/sso/handover?system=…&next=…&state=…``;
2. the issuer, with its own session at the system's level (login or step-up first if
   not), records a one-time *hand-over code* — bound to the session, the system, the host
   and the state — and sends the browser back to ``https://gjj.example/.roam/callback?code=…``;
3. the system's host consumes the code (single use, whatever the concurrency), checks it
   was made for this host and for this browser's state cookie (so nobody can log a victim
   into the attacker's account by sending them a code), and sets its *host session* cookie:
   ``__Host-roam_host`` under https, host-only, ``HttpOnly``, ``SameSite=Lax``.

The host session is a record of its own (``Kind.HOST_SESSION``), one per issuer session
and system (a new hand-over replaces it, with a new secret: however often a browser comes
back without its cookie, the session's group stays as small as its systems), in the
issuer session's group, so logging out — ``/logout``, 我的登录, ``roam sessions revoke`` —
removes every host session with it; it carries the identity as handed over (one store
read per proxied request, as before) and never outlives the issuer session's absolute
timeout.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from starlette.responses import Response

from gateway.config import SessionSection
from gateway.cookies import cookie_value, host_cookie_name
from gateway.digests import secret_digest, secret_matches
from gateway.identity import Identity
from gateway.ids import new_id
from gateway.memo import remember
from gateway.sessions import (
    Session,
    SessionManager,
    cookie_parts,
    session_group,
)
from gateway.store.base import Kind, Store, load_payload

__all__ = [
    "CALLBACK_PATH",
    "LOGOUT_PATH",
    "TOUCH_EVERY",
    "HostSession",
    "HostSessions",
    "Taken",
    "host_session_id",
    "is_state",
]

CALLBACK_PATH = "/.roam/callback"


def host_session_id(sid: str, system: str) -> str:
    """The one host session of issuer session ``sid`` on ``system`` (no ``.``: it is the
    cookie's first part; only the cookie's secret, never this id, lets anyone in)."""
    digest = hashlib.sha256(f"{sid}\x1f{system}".encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
"""On a system's host: where the issuer's hand-over code arrives (never proxied)."""
LOGOUT_PATH = "/.roam/logout"
"""On a system's host: ends the host session and goes on to the issuer's logout."""

HOST_COOKIE = "roam_host"
STATE_COOKIE = "roam_state"
STATE_TTL = 600  # seconds a browser may spend logging in between the two hops

_DECODED_KEPT = 4096
TOUCH_EVERY = 5
"""Seconds between writes of a host session's idle clock, and between its looks at the
issuer session: at most this long does a host session outlive an issuer session that ran
out (a logout ends it at once)."""


def is_state(value: str) -> bool:
    """A state the system's host made: 16–64 URL-safe characters."""
    return 16 <= len(value) <= 64 and all(c.isascii() and (c.isalnum() or c in "-_")
                                          for c in value)


@dataclass(frozen=True)
class HostSession:
    """A browser's session on one system's host."""

    id: str
    sid: str  # the issuer session it was handed over from
    system: str
    identity: Identity
    created: int  # the issuer session's start: the absolute timeout runs from it
    last_seen: int
    secret_sha256: str
    made: int = 0  # when the hand-over made it

    def to_dict(self) -> dict[str, Any]:
        return {"sid": self.sid, "system": self.system, "identity": self.identity.to_dict(),
                "created": self.created, "last_seen": self.last_seen,
                "secret_sha256": self.secret_sha256, "made": self.made,
                "grant_id": session_group(self.sid)}

    @classmethod
    def from_dict(cls, id: str, data: dict[str, Any]) -> HostSession:
        return cls(id=id, sid=str(data["sid"]), system=str(data["system"]),
                   identity=Identity.from_dict(data["identity"]),
                   created=int(data["created"]), last_seen=int(data["last_seen"]),
                   secret_sha256=str(data["secret_sha256"]),
                   made=int(data.get("made", data["created"])))

    def as_session(self) -> Session:
        """The view the gate and the connectors take of any session."""
        return Session(sid=self.sid, identity=self.identity, created=self.created,
                       last_seen=self.last_seen)


class Taken(NamedTuple):
    """What a hand-over code became: the host session, its cookie's value, and the state
    of the hop (whose cookie can go now)."""

    session: HostSession
    cookie: str
    state: str


class HostSessions:
    def __init__(self, store: Store, sessions: SessionManager, *, handover_ttl: int = 60,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.sessions = sessions
        self.settings: SessionSection = sessions.settings
        self.handover_ttl = handover_ttl
        self.clock = clock
        self.secure = sessions.secure_cookie
        self.cookie_name = host_cookie_name(HOST_COOKIE, secure=self.secure)
        self.state_cookie_name = host_cookie_name(STATE_COOKIE, secure=self.secure)
        self._decoded: dict[str | bytes, HostSession] = {}
        # how stale the issuer session's idle clock may get: a small part of its timeout
        self._issuer_touch_every = max(TOUCH_EVERY, self.settings.idle_timeout // 10)

    @property
    def cookie_names(self) -> frozenset[str]:
        """The host session cookie's names: never forwarded to a system, never set by one
        (state cookies are named per hop: :attr:`state_cookie_prefixes`)."""
        return frozenset({HOST_COOKIE, self.cookie_name})

    @property
    def state_cookie_prefixes(self) -> tuple[str, ...]:
        """What every state cookie's name starts with: not forwarded, not set by a system."""
        return (f"{STATE_COOKIE}-", f"{self.state_cookie_name}-")

    # -- the issuer's half ----------------------------------------------------------------

    async def hand_over(self, session: Session, *, system: str, host: str, state: str) -> str:
        """A one-time code that gives ``host`` a session of its own for ``session``."""
        code = new_id(32)
        await self.store.upsert(Kind.HANDOVER_CODE, code, {
            "sid": session.sid, "system": system, "host": host, "state": state,
        }, self.handover_ttl)
        return code

    # -- the system host's half -----------------------------------------------------------

    def state_cookie(self, state: str) -> str:
        """The state cookie's name for one hop: one per hop, so two tabs opening systems at
        once do not overwrite each other's."""
        return f"{self.state_cookie_name}-{state[:8]}"

    async def take(self, code: str, *, system: str, host: str,
                   cookies: str) -> Taken | None:
        """The host session a hand-over code makes, and its cookie value; None when the code
        is unknown, used, expired, made for another system or host, not matched by the
        state cookie in ``cookies`` (this browser's ``Cookie`` header), or its issuer
        session has ended meanwhile."""
        if not code or len(code) > 128:
            return None
        # Checked before it is used up: a wrong host or state (someone else's code) changes
        # nothing; then the atomic consume picks the one winner of any race.
        payload = await self.store.find(Kind.HANDOVER_CODE, code)
        if payload is None or payload.get("system") != system or payload.get("host") != host:
            return None
        expected = str(payload.get("state", ""))
        state = cookie_value(cookies, self.state_cookie(expected)) if is_state(expected) else ""
        if not state or not hmac.compare_digest(state.encode(), expected.encode()):
            return None
        used = await self.store.consume(Kind.HANDOVER_CODE, code)
        if used is None or not used[1]:
            return None
        session = await self.sessions.find(str(payload.get("sid", "")))
        if session is None:
            return None
        now = int(self.clock())
        secret = new_id(32)
        made = HostSession(id=host_session_id(session.sid, system), sid=session.sid,
                           system=system,
                           identity=session.identity, created=session.created, last_seen=now,
                           secret_sha256=secret_digest(secret), made=now)
        ttl = self.sessions.ttl(made, now)
        if ttl <= 0:
            return None
        await self.store.upsert(Kind.HOST_SESSION, made.id, made.to_dict(), ttl)
        # A logout that ran between the look-up and the write revoked the group before
        # this record joined it: look again now that it is in the group (a logout after
        # this look finds it there).
        if await self.sessions.find(session.sid) is None:
            await self.store.destroy(Kind.HOST_SESSION, made.id)
            return None
        return Taken(made, f"{made.id}.{secret}", expected)

    async def load(self, value: str, *, system: str) -> HostSession | None:
        """The live host session of this cookie value for ``system``, touched, or None."""
        parts = cookie_parts(value)
        if parts is None:
            return None
        hsid, secret = parts
        text = await self.store.find_text(Kind.HOST_SESSION, hsid)
        if text is None:
            return None
        found = self._decoded.get(text)
        if found is None:
            found = remember(self._decoded, text, HostSession.from_dict(hsid, load_payload(text)),
                             limit=_DECODED_KEPT)
        if found.system != system or not secret_matches(found.secret_sha256, secret):
            return None
        now = int(self.clock())
        if self.sessions.expired(found, now):
            await self.store.destroy(Kind.HOST_SESSION, hsid)
            return None
        if now - found.last_seen >= TOUCH_EVERY:
            # One idle clock for both: the issuer session must still be live (it may have
            # run out, or been ended by a path that reaches no group), and activity here
            # is activity there, so it does not idle out while the person works here.
            issuer = await self.sessions.find(found.sid)
            if issuer is None:
                await self.store.destroy(Kind.HOST_SESSION, hsid)
                return None
            await self.sessions.touch(issuer, every=self._issuer_touch_every)
            found = replace(found, last_seen=now)
            await self.store.upsert(Kind.HOST_SESSION, hsid, found.to_dict(),
                                    self.sessions.ttl(found, now))
        return found

    async def entered(self, sid: str) -> dict[str, int]:
        """The systems the issuer session ``sid`` has a live host session on: system id →
        when the first of them was made (我的登录 lists them)."""
        found: dict[str, int] = {}
        for kind, _, payload in await self.store.find_by_grant(session_group(sid)):
            if kind == Kind.HOST_SESSION:
                system = str(payload.get("system", ""))
                made = int(payload.get("made", payload.get("created", 0)))
                found[system] = min(made, found.get(system, made))
        return found

    async def end(self, value: str, *, system: str) -> None:
        """Forget the host session of this cookie value (its issuer session stays); only
        with its secret, so knowing a session's id ends nothing."""
        found = await self.load(value, system=system)
        if found is not None:
            await self.store.destroy(Kind.HOST_SESSION, found.id)

    # -- cookies --------------------------------------------------------------------------

    def set_cookie(self, response: Response, value: str) -> None:
        response.set_cookie(self.cookie_name, value, max_age=self.settings.absolute_timeout,
                            path="/", httponly=True, samesite="lax", secure=self.secure)

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(self.cookie_name, path="/", httponly=True, samesite="lax",
                               secure=self.secure)

    def set_state(self, response: Response, state: str) -> None:
        response.set_cookie(self.state_cookie(state), state, max_age=STATE_TTL, path="/",
                            httponly=True, samesite="lax", secure=self.secure)

    def clear_state(self, response: Response, state: str) -> None:
        response.delete_cookie(self.state_cookie(state), path="/", httponly=True,
                               samesite="lax", secure=self.secure)

