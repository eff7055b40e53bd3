"""The gateway as a CAS 3.0 server for legacy systems (connector ``cas``).

Endpoints (mount them as in the wiring below)::

    GET /cas/login?service=URL[&renew=true]  -> 302 URL?ticket=ST-…
    GET /cas/serviceValidate?service=URL&ticket=ST-…     -> XML, user only
    GET /cas/p3/serviceValidate?service=URL&ticket=ST-…  -> XML, user and attributes
    GET /cas/logout[?service=URL]            -> 303 /my/logins

``/cas/login`` accepts only a ``service`` under an allowed prefix of a system whose
connector is ``cas`` (the opened :class:`connectors.cas.Cas`); anything else gets a Chinese
error page and never a redirect (no open redirect). Without a session (or with
``renew=true``) the browser goes to ``/login?next=…``; below the system's ``min_acr`` to
``/stepup?next=…&acr=…`` (:class:`~gateway.legacy.access.Gate`). A service ticket is a
store record ``cas_st/ST-…`` (``[legacy] cas_ticket_ttl``, 60 s by default) holding
the service, the system id, the subject and the claims released for that system
(``connectors.base.released_claims``: registered claims only, ID and phone masked unless
privileged). Validation consumes it atomically: a second use is ``INVALID_TICKET``; a
``service`` other than the one it was issued for is ``INVALID_SERVICE`` and spends it.

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
from connectors.cas import Cas, service_allowed
from gateway.config import SystemConfig, Systems, route_of
from gateway.errors import PageError
from gateway.legacy.access import NO_STORE, Gate, Refusal
from gateway.pages import Pages
from gateway.store.base import Kind, Store
from gateway.urls import append_query

__all__ = ["CAS_NS", "CasServer"]

CAS_NS = "http://www.yale.edu/tp/cas"
_XML = "application/xml; charset=utf-8"


class CasServer:
    def __init__(self, *, systems: Systems, connectors: Mapping[str, Connector], gate: Gate,
                 store: Store, pages: Pages, ticket_ttl: int = 60,
                 logout_path: str = "/my/logins") -> None:
        self.gate = gate
        self.store = store
        self.pages = pages
        self.ticket_ttl = ticket_ttl
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
                if service_allowed(service, (prefix,)) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), system)
        return best[1] if best else None

    # -- /cas/login -----------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        service = request.query_params.get("service", "")
        if not service:
            return self.pages.error(PageError(
                "缺少服务地址", "登录请求没有指明要返回的业务系统地址（service），无法继续。"))
        system = self.system_for(service)
        if system is None:
            return self.pages.error(PageError(
                "未登记的服务地址",
                "要返回的业务系统地址未在统一身份认证平台登记，为保护您的账户，登录已停止。"))
        here = request.url.path + "?" + urlencode({"service": service})
        renew = request.query_params.get("renew", "").lower() in ("true", "1")
        session = await self.gate.enter_request(request, system, renew=renew)
        if isinstance(session, Refusal):
            return self.gate.redirect(session, here)
        identity = session.identity
        route = route_of(system, system.instances[0])
        ticket = "ST-" + secrets.token_urlsafe(32)
        await self.store.upsert(Kind.CAS_TICKET, ticket, {
            "service": service,
            "system_id": system.id,
            "sub": identity.subject,
            "claims": released_claims(identity, route),
        }, self.ticket_ttl)
        return RedirectResponse(append_query(service, {"ticket": ticket}), status_code=302,
                                headers=NO_STORE)

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
            return _failure("INVALID_REQUEST", "service and ticket are required")
        if not ticket.startswith("ST-"):
            return _failure("INVALID_TICKET", f"ticket {ticket} not recognized")
        found = await self.store.consume(Kind.CAS_TICKET, ticket)
        if found is None or not found[1]:
            return _failure("INVALID_TICKET", f"ticket {ticket} not recognized")
        payload = found[0]
        if payload.get("service") != service:
            return _failure("INVALID_SERVICE",
                            f"ticket {ticket} does not match supplied service")
        return _success(str(payload["sub"]), payload.get("claims", {}) if attributes else None)

    # -- /cas/logout ----------------------------------------------------------------------

    async def logout(self, request: Request) -> Response:
        """Show the gateway's own logout (a GET never ends the session by itself)."""
        return RedirectResponse(self.logout_path, status_code=303, headers=NO_STORE)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _xml(body: str) -> Response:
    return Response(f'<cas:serviceResponse xmlns:cas="{CAS_NS}">\n{body}\n'
                    "</cas:serviceResponse>\n", media_type=_XML, headers=NO_STORE)


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
