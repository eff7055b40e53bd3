"""``cas``: a legacy system that is a CAS 3.0 client of the gateway.

The gateway is the CAS server (``gateway.legacy.cas``): the system's CAS client sends the
browser to ``/cas/login?service=<its URL>``, gets a single-use ``ST-…`` ticket back on that
URL and validates it server-to-server at ``/cas/p3/serviceValidate``. Settings::

    connector = "cas"
    connector_settings = { services = ["https://gjj.xiangtan.gov.cn/app/"] }

``services`` are the service URL prefixes the system may ask tickets for. A prefix matches
only at a boundary (the whole URL, or followed by ``/``, ``?`` or ``#``, or the prefix ends
in ``/``), so ``https://a.gov.cn`` does not match ``https://a.gov.cn.evil.example``.
The connector keeps no state: tickets live in the gateway's store.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.base import ConnectorContext, Route
from gateway.identity import Identity
from gateway.urls import is_loopback_http

__all__ = ["Cas", "CasConfig", "service_allowed", "valid_service_url"]


def valid_service_url(value: str) -> bool:
    """An absolute https URL (plain http only on loopback), no user info, no control chars."""
    if any(ord(c) < 33 or ord(c) == 127 for c in value) or "\\" in value:
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    if parts.scheme not in ("https", "http") or not parts.hostname or "@" in parts.netloc:
        return False
    return parts.scheme == "https" or is_loopback_http(value)


def service_allowed(service: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``service`` starts with one of ``prefixes`` at a URL boundary."""
    if not valid_service_url(service):
        return False
    for prefix in prefixes:
        if not service.startswith(prefix):
            continue
        rest = service[len(prefix):]
        if not rest or prefix.endswith("/") or rest[0] in "/?#":
            return True
    return False


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
                                 "(plain http only on loopback), without user info")
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
