"""What every way into a legacy system checks first: a session, at the system's level.

The CAS login, the ticket issuer (and, for navigations, the proxy) send a person without
a session to the login page and one below the system's ``min_acr`` to step-up, each time
with a ``next`` back to where they were going.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse

from gateway.identity import level_rank
from gateway.routing.systems import SystemConfig
from gateway.sessions import Session, SessionManager

NO_STORE = {"Cache-Control": "no-store"}


async def session_for_system(
    request: Request, system: SystemConfig, sessions: SessionManager, *, here: str,
    login_path: str = "/login", stepup_path: str = "/stepup", renew: bool = False,
) -> Session | RedirectResponse:
    """The person's session if it may enter ``system``; else where they must go first."""
    session = None if renew else await sessions.load(request)
    if session is None:
        return RedirectResponse(f"{login_path}?{urlencode({'next': here})}", status_code=303,
                                headers=NO_STORE)
    if level_rank(session.identity.acr) < level_rank(system.min_acr):
        query = urlencode({"next": here, "acr": system.min_acr})
        return RedirectResponse(f"{stepup_path}?{query}", status_code=303, headers=NO_STORE)
    return session
