"""A way into a system that names one of its instances — a CAS ``service``, a ticket
``target``, a proxied page — when that instance, or every one, is out of rotation.

:meth:`Failover.onto_usable` moves such a URL to the same place on an instance routing
may use (:func:`gateway.health.usable`). A system with none left is not the end of the
way: :meth:`Failover.elsewhere` sends the person to ``/go`` for the system's item in
the system's own region, which falls back to the next level that handles it and says
so; a system handling several items gets a page listing them, each such a link.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from starlette.responses import RedirectResponse, Response

from gateway.config import SystemConfig, Systems
from gateway.errors import new_reference
from gateway.health import AlwaysUp, Health, unavailable_because, usable
from gateway.legacy.access import NO_STORE
from gateway.pages import Pages
from gateway.urls import normalized_url, url_under

__all__ = ["Failover"]


class Failover:
    def __init__(self, *, systems: Systems, pages: Pages, issuer: str,
                 health: Health | None = None) -> None:
        self.systems = systems
        self.pages = pages
        self.issuer = issuer  # /go is the issuer's, also from a page on a system's host
        self.health: Health = health or AlwaysUp()

    def onto_usable(self, url: str, system: SystemConfig) -> str | None:
        """``url`` on a usable instance: as it is if its instance is usable (or it lies
        under none of them: then nothing says which instance it reaches), else the same
        path and query under a usable one; None if the system has none."""
        pool = usable(self.health, system)
        if not pool:
            return None
        home = next((i for i in system.instances if url_under(url, i)), None)
        if home is None or home in pool:
            return url
        target, base = normalized_url(url), normalized_url(home)
        if target is None or base is None:  # pragma: no cover - url_under normalised both
            return None
        return pool[0].rstrip("/") + target[len(base.rstrip("/")):]

    def elsewhere(self, system: SystemConfig) -> Response:
        """To ``/go`` for the system's item (one), or a page of its items (several)."""
        links = [(f"{self.issuer}/go/{quote(code)}?{urlencode({'region': system.region})}",
                  found.name if (found := self.systems.item(code)) is not None else code)
                 for code in system.items]
        if len(links) == 1:
            return RedirectResponse(links[0][0], status_code=303, headers=NO_STORE)
        return self.pages.render("go_error.html", {
            "title": f"{system.name}{unavailable_because(self.health, system)}",
            "detail": "该系统暂时无法办理业务。",
            "links_title": "请选择要办理的事项，我们将为您转到可以办理的系统：",
            "links": links, "ref": new_reference()}, status=503)
