"""``/go/{item}?region=…`` (精准到达): send a person to the system that handles the item.

The region defaults to the person's own; resolution walks county → city → province. A
person without a session goes through the login page, one below the chosen system's
``min_acr`` through step-up (the gate every way into a system passes), and both come
back to the same link. Systems whose connector ``RedirectsLogin`` are reached through
their own login (``oidc``: the system asks the gateway; ``cas``, ``ticket``: the gateway's
ticket-issuing login URL for them); systems whose connector presents identity in headers
through the gateway's proxy, on the system's own host (or at ``/s/<system>/`` in path mode).
An unknown item or region, or no route, is a Chinese page that lists what does exist.

When the nearest system is down or drained (:mod:`gateway.health`) and a level above
handles the item, the person is not sent there silently: a short Chinese page says which
system is unavailable and why, and where they are being sent (it continues by itself
after a few seconds, or at a click). A fallback only because the county has no system
of its own is ordinary routing and needs no word.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from connectors.base import Connector, RedirectsLogin
from gateway.audit import audit_event
from gateway.config import route_of
from gateway.errors import new_reference
from gateway.legacy.access import Gate, Refusal
from gateway.pages import Pages
from gateway.regions import PROVINCE_CODE
from gateway.routing.resolve import (
    NoRoute,
    Resolution,
    Resolver,
    RouteError,
    UnknownItem,
    UnknownRegion,
)
from gateway.sessions import SessionManager
from gateway.urls import origin_on

__all__ = ["GoPages"]

NOTICE_SECONDS = 5
"""How long the page saying where a person is sent instead stays before it goes on."""


class GoPages:
    def __init__(self, *, resolver: Resolver, sessions: SessionManager, gate: Gate,
                 connectors: Mapping[str, Connector], pages: Pages,
                 proxy_prefix: str = "/s/", issuer: str = "") -> None:
        self.resolver = resolver
        self.sessions = sessions
        self.gate = gate
        self.connectors = connectors  # every system's opened connector
        self.pages = pages
        self.proxy_prefix = proxy_prefix  # where the proxy serves systems that present identity
        self.issuer = issuer  # a system on a host of its own: that host, the issuer's port

    async def handle(self, request: Request) -> Response:
        item = request.path_params["item"]
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        session = await self.sessions.load(request)
        if session is None:
            return self.gate.redirect(Refusal("login"), here)
        region = request.query_params.get("region") or session.identity.region or PROVINCE_CODE
        try:
            found = self.resolver.resolve(item, region)
        except RouteError as exc:
            return self._not_found(exc, item, region)
        system = found.system
        admitted = self.gate.admit(session, system)
        if isinstance(admitted, Refusal):  # stepped up here, then back to this same link
            return self.gate.redirect(admitted, here)
        connector = self.connectors.get(system.id)
        if isinstance(connector, RedirectsLogin):
            target = await connector.login_url(self.gate.seen_by(system, session.identity),
                                               route_of(system, found.instance),
                                               found.instance.rstrip("/") + "/")
        elif system.hosts:  # a proxied system on a host of its own
            target = origin_on(self.issuer, system.hosts[0]) + "/"
        else:
            target = f"{self.proxy_prefix}{system.id}/"
        audit_event("route.resolve", "success", subject=session.identity.subject,
                    system=system.id, item=item, region=region, via=found.region,
                    fallback=found.fallback, sid=session.sid,
                    skipped=[s.system.id for s in found.skipped])
        if found.skipped:
            return self._notice(found, item, target)
        return RedirectResponse(target, status_code=303)

    def _notice(self, found: Resolution, item: str, target: str) -> Response:
        """The page telling the person the nearer system is unavailable, and where to."""
        at = self.resolver.regions.get(found.region)
        catalogued = self.resolver.systems.item(item)
        return self.pages.render("go_notice.html", {
            "skipped": [(s.system.name, s.why) for s in found.skipped],
            "item_name": catalogued.name if catalogued is not None else item,
            "region_name": at.name if at is not None else found.region,
            "system_name": found.system.name, "target": target, "delay": NOTICE_SECONDS})

    async def items(self, request: Request) -> Response:
        """事项 page: every item, each a /go link for the chosen region (no login needed)."""
        region = (request.query_params.get("region") or "").strip()
        found = self.resolver.regions.get(region) if region else None
        query = f"?{urlencode({'region': region})}" if found is not None else ""
        items = [{"code": i.code, "name": i.name, "href": f"/go/{quote(i.code)}{query}"}
                 for i in self.resolver.systems.items()]
        return self.pages.render("items.html", {
            "items": items, "region": region,
            "region_name": found.name if found is not None else ""})

    def _not_found(self, exc: RouteError, item: str, region: str) -> Response:
        ref = new_reference()
        links: list[tuple[str, str]] = []
        if isinstance(exc, UnknownItem):
            title, detail = "未找到该事项", f"事项编码 {item} 不存在。"
            links_title = "您要办理的是不是："
            links = [(f"/go/{i.code}?{urlencode({'region': region})}", i.name)
                     for i in exc.suggestions]
        elif isinstance(exc, UnknownRegion):
            title, detail = "未找到该地区", f"行政区划代码 {region} 不是湖南省现行的区划。"
            links_title = "您要办理的地区是不是："
            links = [(f"/go/{item}?{urlencode({'region': r.code})}", r.name)
                     for r in exc.suggestions]
        elif isinstance(exc, NoRoute):
            title, detail = "暂无办理系统", "您所在地区及其上级暂时没有可以办理该事项的系统。"
            if exc.skipped:
                detail = "；".join(f"{s.system.name}{s.why}" for s in exc.skipped) + \
                    "，暂时没有其他可以办理该事项的系统。"
            links_title = "以下地区的系统可以办理："
            links = [(f"/go/{item}?{urlencode({'region': r.code})}", f"{r.name}：{s.name}")
                     for r, s in exc.nearby]
        else:  # pragma: no cover - the three above are every RouteError
            raise exc
        audit_event("route.resolve", "failure", ref=ref, item=item, region=region,
                    error=str(exc))
        return self.pages.render("go_error.html", {
            "title": title, "detail": detail, "links_title": links_title, "links": links,
            "ref": ref}, status=404)
