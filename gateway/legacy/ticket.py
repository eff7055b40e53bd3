"""One-time tickets for ``ticket`` systems (connector ``connectors.ticket``).

Endpoints (mount them as in the wiring below)::

    GET  /ticket/issue?system=ID&target=URL  -> 302 URL?ticket=…
    POST /ticket/redeem   (HTTP Basic system_id:secret, form ticket=…) -> JSON claims

``/ticket/issue`` takes only a ``system`` whose connector is ``ticket`` and a ``target``
under one of that system's instances (:func:`gateway.urls.url_under`: normalised, on a
path-segment boundary, no dot segments); anything else is a Chinese error page with a
reference id, never a redirect. Without a session the browser goes to ``/login?next=…``,
below the system's ``min_acr`` to ``/stepup?next=…&acr=…``
(:class:`~gateway.legacy.access.Gate`). The ticket is a store record
``sys_ticket/<random>`` living the system's ``ttl`` (≤ 60 s), holding the system id and
the claims released for it (``released_claims``: registered only, ID and phone masked
unless privileged).

A ``target`` under an instance that is down or drained (:mod:`gateway.health`) is moved
to the same place on a usable instance; a system with none sends the person on through
``/go``, a level up (:class:`~gateway.legacy.failover.Failover`).

``/ticket/redeem`` authenticates the system (``401 invalid_client``), then consumes the
ticket atomically: unknown, expired, already used or issued for another system are all
``400 invalid_grant`` (a ticket shown to the wrong system is spent). Success is ``200``
with the claims (``sub``, ``acr`` and the released ones), ``Cache-Control: no-store``.
Issuing and redeeming are audit events (``ticket.issue``, ``ticket.redeem``), never with
the ticket.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from connectors.base import Connector, released_claims
from connectors.ticket import Ticket
from gateway.audit import audit_event
from gateway.config import SystemConfig, Systems, route_of
from gateway.errors import PageError
from gateway.legacy.access import NO_STORE, Gate, Refusal
from gateway.legacy.failover import Failover
from gateway.pages import Pages
from gateway.store.base import Kind, Store
from gateway.urls import append_query, url_under

__all__ = ["TicketEndpoints"]


class TicketEndpoints:
    def __init__(self, *, systems: Systems, connectors: Mapping[str, Connector], gate: Gate,
                 store: Store, pages: Pages, failover: Failover | None = None) -> None:
        self.gate = gate
        self.failover = failover or Failover(systems=systems, pages=pages, issuer="")
        self.store = store
        self.pages = pages
        # Each ticket system with its opened connector (credential digest, ticket TTL).
        self._systems: dict[str, tuple[SystemConfig, Ticket]] = {
            system.id: (system, connector) for system in systems
            if isinstance(connector := connectors.get(system.id), Ticket)}

    async def issue(self, request: Request) -> Response:
        found = self._systems.get(request.query_params.get("system", ""))
        if found is None:
            return self.pages.error(PageError(
                "未知的业务系统", "要前往的业务系统不存在或未以票据方式接入统一身份认证平台。"))
        system, connector = found
        target = request.query_params.get("target", "")
        if not any(url_under(target, instance) for instance in system.instances):
            return self.pages.error(PageError(
                "跳转地址无效",
                f"要前往的地址不属于业务系统“{system.name}”，为保护您的账户，已停止跳转。"))
        moved = self.failover.onto_usable(target, system)
        if moved is None:
            return self.failover.elsewhere(system)
        target = moved
        here = request.url.path + "?" + urlencode({"system": system.id, "target": target})
        session = await self.gate.enter_request(request, system)
        if isinstance(session, Refusal):
            return self.gate.redirect(session, here)
        identity = session.identity
        route = route_of(system, system.instances[0])
        ticket = secrets.token_urlsafe(32)
        await self.store.upsert(Kind.SYSTEM_TICKET, ticket, {
            "system_id": system.id,
            "claims": released_claims(self.gate.seen_by(system, identity), route)},
            connector.ttl)
        audit_event("ticket.issue", "success", subject=identity.subject, system=system.id,
                    sid=session.sid, target=target)
        return RedirectResponse(append_query(target, {"ticket": ticket}),
                                status_code=302, headers=NO_STORE)

    async def redeem(self, request: Request) -> Response:
        system_id = self._authenticate(request)
        if system_id is None:
            audit_event("ticket.redeem", "failure", error="invalid_client")
            return JSONResponse(
                {"error": "invalid_client", "error_description": "System authentication failed."},
                status_code=401, headers={**NO_STORE, "WWW-Authenticate": 'Basic realm="roam"'})
        form = await request.form()
        ticket = form.get("ticket")
        if not isinstance(ticket, str) or not ticket:
            return _bad(system_id, "invalid_request", "ticket is required.")
        found = await self.store.consume(Kind.SYSTEM_TICKET, ticket)
        if found is None or not found[1]:
            return _bad(system_id, "invalid_grant",
                        "The ticket is unknown, expired or already used.")
        payload = found[0]
        claims = payload.get("claims", {})
        subject = str(claims.get("sub")) if isinstance(claims, dict) else None
        if payload.get("system_id") != system_id:
            return _bad(system_id, "invalid_grant", "The ticket was not issued for this system.",
                        subject=subject, issued_for=str(payload.get("system_id")))
        audit_event("ticket.redeem", "success", subject=subject, system=system_id)
        return JSONResponse(claims, headers=NO_STORE)

    def _authenticate(self, request: Request) -> str | None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        system_id, colon, secret = decoded.partition(":")
        found = self._systems.get(system_id)
        if not colon or found is None or not found[1].check_secret(secret):
            return None
        return system_id


def _bad(system_id: str, error: str, description: str, **details: str | None) -> JSONResponse:
    audit_event("ticket.redeem", "failure", system=system_id, error=error, **details)
    return JSONResponse({"error": error, "error_description": description}, status_code=400,
                        headers=NO_STORE)
