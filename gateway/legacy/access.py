"""The gate every way into a system passes: a live session, at the system's level.

The proxy, ``/go``, the CAS login and the ticket issuer all ask :meth:`Gate.admit` (or
:meth:`Gate.enter`, which reads the session first). A person without a session is sent to
the login page, one below the system's ``min_acr`` to step-up — each time with a ``next``
back to where they were going — and a caller that answers programs rather than people
(the proxy) turns the same :class:`Refusal` into JSON instead.

What each of them hands a system's connector is the person as that system sees them
(:meth:`Gate.seen_by`): the person's own ``sub``, or — for a system with ``subject_type =
"pairwise"`` — one of its sector alone, as a pairwise client sees (OIDC Core §8); inside
the gateway (the audit trail, sessions) the person's own ``sub`` stays the key.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, NamedTuple
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse

from gateway.config import SystemConfig
from gateway.digests import KeyedDigests
from gateway.identity import Identity, level_rank
from gateway.sessions import Session, SessionManager

__all__ = ["NO_STORE", "Gate", "Refusal"]

NO_STORE = {"Cache-Control": "no-store"}


class Refusal(NamedTuple):
    """Why a person may not enter a system yet: ``login`` (no session, or a fresh login
    was asked for) or ``stepup`` to the level ``acr``."""

    step: Literal["login", "stepup"]
    acr: str = ""


class Gate:
    def __init__(self, sessions: SessionManager, *, login_path: str = "/login",
                 stepup_path: str = "/stepup", digests: KeyedDigests | None = None) -> None:
        self.sessions = sessions
        self.login_path = login_path
        self.stepup_path = stepup_path
        self.digests = digests or KeyedDigests.ephemeral()

    def seen_by(self, system: SystemConfig, identity: Identity) -> Identity:
        """``identity`` as ``system``'s connector presents it."""
        if system.subject_type != "pairwise":
            return identity
        return replace(identity, subject=self.digests.pairwise(system.subject_sector,
                                                               identity.subject))

    def admit(self, session: Session | None, system: SystemConfig) -> Session | Refusal:
        """The session if it may enter ``system``, else what it must do first."""
        if session is None:
            return Refusal("login")
        if level_rank(session.identity.acr) < level_rank(system.min_acr):
            return Refusal("stepup", system.min_acr)
        return session

    async def enter(self, cookie: str, system: SystemConfig, *,
                    renew: bool = False) -> Session | Refusal:
        """:meth:`admit` for the session cookie's value (``renew``: a fresh login asked
        for, whatever the session)."""
        if renew:
            return Refusal("login")
        return self.admit(await self.sessions.load_cookie(cookie), system)

    async def enter_request(self, request: Request, system: SystemConfig, *,
                            renew: bool = False) -> Session | Refusal:
        """:meth:`enter` with the cookie of ``request``."""
        if renew:
            return Refusal("login")
        return self.admit(await self.sessions.load(request), system)

    def where(self, refusal: Refusal, back_to: str, *, gateway: str = "") -> str:
        """The login or step-up page that comes back to ``back_to`` afterwards (on
        ``gateway``, the issuer's URL, when the request came on another host)."""
        if refusal.step == "login":
            return f"{gateway}{self.login_path}?{urlencode({'next': back_to})}"
        query = urlencode({"next": back_to, "acr": refusal.acr})
        return f"{gateway}{self.stepup_path}?{query}"

    def redirect(self, refusal: Refusal, back_to: str) -> RedirectResponse:
        return RedirectResponse(self.where(refusal, back_to), status_code=303,
                                headers=NO_STORE)
