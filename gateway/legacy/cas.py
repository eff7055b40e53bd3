"""The gateway as a CAS 3.0 server for legacy systems (connector ``cas``).

Endpoints (mount them as in the wiring below)::

    GET /cas/login?service=URL[&renew=true]  -> 302 URL?ticket=ST-…
    GET /cas/serviceValidate?service=URL&ticket=ST-…     -> XML, user only
    GET /cas/p3/serviceValidate?service=URL&ticket=ST-…  -> XML, user and attributes
    GET /cas/logout[?service=URL]            -> 303 /my/logins

A ``service`` under an instance that is down or drained (:mod:`gateway.health`) is moved
to the same place on a usable instance of the system, if the system allows that service
too; a system with no usable instance sends the person on through ``/go``, a level up
(:class:`~gateway.legacy.failover.Failover`).

``/cas/login`` accepts only a ``service`` under an allowed prefix of a system whose
connector is ``cas`` (the opened :class:`connectors.cas.Cas`; compared by
:func:`gateway.urls.url_under`: normalised, on a path-segment boundary, no dot segments);
anything else gets a Chinese error page with a reference id and never a redirect (no open
redirect). Without a session the browser goes to ``/login?next=…``; below the system's
``min_acr`` to ``/stepup?next=…&acr=…`` (:class:`~gateway.legacy.access.Gate`). A service
ticket is a store record ``cas_st/ST-…`` (``[legacy] cas_ticket_ttl``, 60 s by default)
holding the service, the system id, the subject, the claims released for that system
(``connectors.base.released_claims``: registered claims only, ID and phone masked unless
privileged) and whether it came from a primary login made for it. Validation consumes it
atomically: a second use is ``INVALID_TICKET``; a ``service`` other than the one it was
issued for, or one no longer under a registered prefix, is ``INVALID_SERVICE`` and spends it.

**renew** (CAS 3.0 §2.1.1, §2.5.1). ``/cas/login?renew=true`` never uses the SSO session:
it sends the person to the login page, and a ticket is issued only once a primary login
was made after that request. Each trip to the login page from ``/cas/login`` leaves a
one-time record ``cas_login/<id>`` (the service, the time, which session start the browser
had then: ``sid`` and ``created``), and the way back carries ``fresh=<id>``: the login was
primary and for this request when the session is another start than the recorded one, and
started (``created``) and authenticated (``auth_time``) no earlier than the record. A
step-up keeps ``sid`` and ``created``, so it never counts as a primary login. The ticket records
``primary``; ``serviceValidate?renew=true`` refuses a ticket without it (``INVALID_TICKET``).

Issuing and validating tickets are audit events (``cas.ticket.issue``,
``cas.ticket.redeem``), never with the ticket itself.

``/cas/logout`` does not end the session by a GET (any page could trigger it): it sends
the person to ``/my/logins``, where they see their logins and log out everywhere with a
CSRF-protected form (which also notifies OIDC systems by back-channel). ``service`` is
ignored.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from connectors.base import Connector, released_claims
from connectors.cas import Cas
from gateway.audit import audit_event
from gateway.config import SystemConfig, Systems, route_of
from gateway.errors import PageError
from gateway.ids import new_id
from gateway.legacy.access import NO_STORE, Gate, Refusal
from gateway.legacy.failover import Failover
from gateway.pages import Pages
from gateway.sessions import Session
from gateway.store.base import Kind, Store
from gateway.urls import append_query, url_under

__all__ = ["CAS_NS", "CasServer"]

CAS_NS = "http://www.yale.edu/tp/cas"
_XML = "application/xml; charset=utf-8"


class CasServer:
    def __init__(self, *, systems: Systems, connectors: Mapping[str, Connector], gate: Gate,
                 store: Store, pages: Pages, ticket_ttl: int = 60,
                 login_ttl: int = 1800, logout_path: str = "/my/logins",
                 failover: Failover | None = None) -> None:
        self.gate = gate
        self.failover = failover or Failover(systems=systems, pages=pages, issuer="")
        self.sessions = gate.sessions
        self.store = store
        self.pages = pages
        self.ticket_ttl = ticket_ttl
        self.login_ttl = login_ttl  # how long a trip to the login page may take ([login])
        self.logout_path = logout_path
        # Each cas system with its opened connector (which holds the allowed prefixes).
        self._services: list[tuple[SystemConfig, Cas]] = [
            (system, connector) for system in systems
            if isinstance(connector := connectors.get(system.id), Cas)]

    def system_for(self, service: str) -> SystemConfig | None:
        """The cas system whose allowed prefix matches ``service`` (the longest one wins)."""
        best: tuple[int, SystemConfig] | None = None
        for system, connector in self._services:
            for prefix in connector.services:
                if url_under(service, prefix) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), system)
        return best[1] if best else None

    def _allows(self, system: SystemConfig, service: str) -> bool:
        return any(s is system and c.allows(service) for s, c in self._services)

    # -- /cas/login -----------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        service = request.query_params.get("service", "")
        if not service:
            return self.pages.error(PageError(
                "缺少服务地址", "登录请求没有指明要返回的业务系统地址（service），无法继续。"))
        system = self.system_for(service)
        if system is None:
            page = PageError(
                "未登记的服务地址",
                "要返回的业务系统地址未在统一身份认证平台登记，为保护您的账户，登录已停止。")
            audit_event("cas.ticket.issue", "denied", ref=page.ref, service=service,
                        reason="service not under a registered prefix")
            return self.pages.error(page)
        moved = self.failover.onto_usable(service, system)
        if moved is None or not self._allows(system, moved):
            return self.failover.elsewhere(system)
        service = moved
        renew = request.query_params.get("renew", "").lower() in ("true", "1")
        fresh_id = request.query_params.get("fresh", "")
        fresh = await self._trip(fresh_id, service)
        session = await self.sessions.load(request)
        if renew and (fresh is None or session is None or not _logged_in_since(session, fresh)):
            return await self._to_login(request, service, session, renew=True)
        admitted = self.gate.admit(session, system)
        if isinstance(admitted, Refusal):
            if admitted.step == "login":
                return await self._to_login(request, service, session, renew=renew)
            return self.gate.redirect(admitted, _here(request, service, renew, fresh_id))
        primary = (fresh is not None and _logged_in_since(admitted, fresh)
                   and await self._spend(fresh_id))
        if renew and not primary:  # the trip was spent meanwhile (a second tab)
            return await self._to_login(request, service, admitted, renew=True)
        identity = admitted.identity
        seen = self.gate.seen_by(system, identity)
        route = route_of(system, system.instances[0])
        ticket = "ST-" + secrets.token_urlsafe(32)
        await self.store.upsert(Kind.CAS_TICKET, ticket, {
            "service": service,
            "system_id": system.id,
            "sub": seen.subject,
            "claims": released_claims(seen, route),
            "primary": primary,
        }, self.ticket_ttl)
        audit_event("cas.ticket.issue", "success", subject=identity.subject, system=system.id,
                    sid=admitted.sid, service=service, primary=primary, renew=renew)
        return RedirectResponse(append_query(service, {"ticket": ticket}), status_code=302,
                                headers=NO_STORE)

    async def _to_login(self, request: Request, service: str, session: Session | None, *,
                        renew: bool) -> Response:
        """To the login page, coming back with a one-time ``fresh`` id that tells whether a
        primary login was made for this request (see the module docstring)."""
        fresh_id = new_id(24)
        await self.store.upsert(Kind.CAS_LOGIN, fresh_id, {
            "service": service,
            "created": int(self.sessions.clock()),
            "session": [session.sid, session.created] if session is not None else None,
        }, self.login_ttl)
        return self.gate.redirect(Refusal("login"), _here(request, service, renew, fresh_id))

    async def _trip(self, fresh_id: str, service: str) -> dict[str, Any] | None:
        """The ``cas_login`` record of ``fresh_id`` if it was made for ``service``."""
        if not fresh_id:
            return None
        found = await self.store.find(Kind.CAS_LOGIN, fresh_id)
        return found if found is not None and found.get("service") == service else None

    async def _spend(self, fresh_id: str) -> bool:
        found = await self.store.consume(Kind.CAS_LOGIN, fresh_id)
        return found is not None and found[1]

    # -- validation -----------------------------------------------------------------------

    async def service_validate(self, request: Request) -> Response:
        """CAS 2.0-style ``/serviceValidate``: the user only."""
        return await self._validate(request, attributes=False)

    async def p3_service_validate(self, request: Request) -> Response:
        """CAS 3.0 ``/p3/serviceValidate``: the user and the released attributes."""
        return await self._validate(request, attributes=True)

    async def _validate(self, request: Request, *, attributes: bool) -> Response:
        service = request.query_params.get("service", "")
        ticket = request.query_params.get("ticket", "")
        if not service or not ticket:
            return _refused("INVALID_REQUEST", "service and ticket are required", service)
        if not ticket.startswith("ST-"):
            return _refused("INVALID_TICKET", f"ticket {ticket} not recognized", service)
        found = await self.store.consume(Kind.CAS_TICKET, ticket)
        if found is None or not found[1]:
            return _refused("INVALID_TICKET", f"ticket {ticket} not recognized", service,
                            reason="unknown, expired or used")
        payload = found[0]
        sub, system = str(payload.get("sub")), str(payload.get("system_id"))
        if payload.get("service") != service or self.system_for(service) is None:
            return _refused("INVALID_SERVICE", f"ticket {ticket} does not match supplied service",
                            service, subject=sub, system=system)
        if (request.query_params.get("renew", "").lower() in ("true", "1")
                and payload.get("primary") is not True):
            return _refused("INVALID_TICKET",
                            f"ticket {ticket} was not issued from a primary login (renew)",
                            service, subject=sub, system=system, reason="renew")
        audit_event("cas.ticket.redeem", "success", subject=sub, system=system, service=service,
                    attributes=attributes)
        return _success(sub, payload.get("claims", {}) if attributes else None)

    # -- /cas/logout ----------------------------------------------------------------------

    async def logout(self, request: Request) -> Response:
        """Show the gateway's own logout (a GET never ends the session by itself)."""
        return RedirectResponse(self.logout_path, status_code=303, headers=NO_STORE)


def _here(request: Request, service: str, renew: bool, fresh_id: str) -> str:
    """This ``/cas/login`` request again, to come back to after a login or step-up."""
    params = {"service": service}
    if renew:
        params["renew"] = "true"
    if fresh_id:
        params["fresh"] = fresh_id
    return request.url.path + "?" + urlencode(params)


def _logged_in_since(session: Session, trip: Mapping[str, Any]) -> bool:
    """Whether ``session`` comes from a primary login made after the trip to the login page
    began: a session start other than the one the browser had then, and no earlier than
    the trip (a step-up keeps the start, so it is never one)."""
    since = int(trip.get("created", 0))
    return (session.created >= since and session.identity.auth_time >= since
            and [session.sid, session.created] != trip.get("session"))


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _xml(body: str) -> Response:
    return Response(f'<cas:serviceResponse xmlns:cas="{CAS_NS}">\n{body}\n'
                    "</cas:serviceResponse>\n", media_type=_XML, headers=NO_STORE)


def _refused(code: str, message: str, service: str, *, subject: str | None = None,
             system: str | None = None, reason: str | None = None) -> Response:
    """A validation failure: audited (without the ticket), then answered."""
    audit_event("cas.ticket.redeem", "failure", subject=subject, system=system, code=code,
                service=service, reason=reason)
    return _failure(code, message)


def _failure(code: str, message: str) -> Response:
    return _xml(f"  <cas:authenticationFailure code={quoteattr(code)}>{escape(message)}"
                "</cas:authenticationFailure>")


def _success(user: str, claims: dict[str, Any] | None) -> Response:
    lines = ["  <cas:authenticationSuccess>", f"    <cas:user>{escape(user)}</cas:user>"]
    if claims is not None:
        lines.append("    <cas:attributes>")
        for name, value in sorted(claims.items()):
            if name == "sub" or not name.isidentifier():
                continue
            lines.append(f"      <cas:{name}>{escape(_text(value))}</cas:{name}>")
        lines.append("    </cas:attributes>")
    lines.append("  </cas:authenticationSuccess>")
    return _xml("\n".join(lines))
