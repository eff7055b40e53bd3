"""``cas``: a legacy system that is a CAS 3.0 client of the gateway.

The gateway is the CAS server (``gateway.legacy.cas``): the system's CAS client sends the
browser to ``/cas/login?service=<its URL>``, gets a single-use ``ST-…`` ticket back on that
URL and validates it server-to-server at ``/cas/p3/serviceValidate``. Settings::

    connector = "cas"
    connector_settings = { services = ["https://gjj.xiangtan.gov.cn/app/"] }

``services`` are the service URL prefixes the system may ask tickets for. A service matches
by :func:`gateway.urls.url_under`: both normalised, on a path-segment boundary, and never
with a dot segment (``/app/../other``, ``%2e%2e``), so ``https://a.gov.cn/app`` covers
neither ``https://a.gov.cn/appx`` nor ``https://a.gov.cn.evil.example``.
The connector keeps no state: tickets live in the gateway's store.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.base import ConnectorContext, Route
from gateway.identity import Identity
from gateway.urls import normalized_url, url_under

__all__ = ["Cas", "CasConfig", "service_allowed", "valid_service_url"]


def valid_service_url(value: str) -> bool:
    """An absolute https URL (plain http only on loopback), no user info, no control chars,
    no dot segment (:func:`gateway.urls.normalized_url`)."""
    return normalized_url(value) is not None


def service_allowed(service: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``service`` lies under one of ``prefixes`` (:func:`gateway.urls.url_under`)."""
    return any(url_under(service, prefix) for prefix in prefixes)


class CasConfig(BaseModel):
    """Settings: ``services``, the allowed service URL prefixes (at least one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    services: list[str] = Field(min_length=1)

    @field_validator("services")
    @classmethod
    def _services(cls, value: list[str]) -> list[str]:
        for url in value:
            if not valid_service_url(url):
                raise ValueError(f"{url!r} is not an absolute https URL "
                                 "(plain http only on loopback), without user info "
                                 "or dot segments")
        return value

    def open(self, ctx: ConnectorContext) -> Cas:
        return Cas(services=tuple(self.services), issuer=ctx.issuer.rstrip("/"))


@dataclass(frozen=True)
class Cas:
    """The opened connector: the allowed prefixes and where the gateway's CAS server is."""

    services: tuple[str, ...]
    issuer: str
    type_name: str = "cas"

    def allows(self, service: str) -> bool:
        return service_allowed(service, self.services)

    async def login_url(self, identity: Identity, route: Route, target: str) -> str:
        """``RedirectsLogin``: arrive at ``target`` through the gateway's ``/cas/login``,
        which issues the ticket at once when the browser has a session."""
        if not self.allows(target):
            raise ValueError(f"{target!r} is not a registered service of {route.system_id}")
        return f"{self.issuer}/cas/login?service={quote(target, safe='')}"
