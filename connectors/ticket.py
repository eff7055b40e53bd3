"""``ticket``: the common government pattern — a one-time ticket in the redirect, redeemed
server-to-server for the user's claims.

The gateway (``gateway.legacy.ticket``) sends the browser to the system's page with
``?ticket=…`` (single use, at most 60 s, bound to the system); the system posts it to
``/ticket/redeem`` with HTTP Basic ``system_id:secret`` and gets the claims released for
it as JSON. Settings::

    connector = "ticket"
    connector_settings = { secret_env = "GJJ_TICKET_SECRET", ttl = 60 }

``secret`` (≥ 32 characters) or ``secret_env`` (exactly one) is the system's credential;
the opened connector keeps only its SHA-256, as for OIDC client secrets, and compares in
constant time. ``ttl`` is the ticket lifetime in seconds (1–60). Tickets live in the
gateway's store; the connector keeps no state.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode

from pydantic import Field

from connectors.base import ConnectorContext, Route
from connectors.secret import MIN_SECRET_LENGTH, SharedSecretSettings
from gateway.identity import Identity
from gateway.urls import url_under

__all__ = ["MIN_SECRET_LENGTH", "Ticket", "TicketConfig"]



class TicketConfig(SharedSecretSettings):
    """Settings: ``secret`` or ``secret_env`` (exactly one), ``ttl`` seconds (≤ 60)."""

    ttl: int = Field(default=60, ge=1, le=60)

    def secret_sha256(self) -> str:
        """Hex SHA-256 of the secret: the gateway keeps only this."""
        return hashlib.sha256(self.resolved_secret()).hexdigest()

    def open(self, ctx: ConnectorContext) -> Ticket:
        return Ticket(secret_sha256=self.secret_sha256(), ttl=self.ttl,
                      issuer=ctx.issuer.rstrip("/"))


@dataclass(frozen=True, repr=False)
class Ticket:
    """The opened connector: the credential's digest, the ticket TTL, the gateway URL."""

    secret_sha256: str
    ttl: int
    issuer: str
    type_name: str = "ticket"

    def __repr__(self) -> str:
        return f"Ticket(ttl={self.ttl})"  # never the digest

    def check_secret(self, presented: str) -> bool:
        digest = hashlib.sha256(presented.encode("utf-8")).hexdigest()
        return hmac.compare_digest(digest, self.secret_sha256)

    async def login_url(self, identity: Identity, route: Route, target: str) -> str:
        """``RedirectsLogin``: the gateway issues the ticket and continues to ``target``,
        which must lie under the route's instance (as ``/ticket/issue`` checks again)."""
        if not url_under(target, route.base_url):
            raise ValueError(f"{target!r} is not under {route.system_id}'s instance")
        query = urlencode({"system": route.system_id, "target": target})
        return f"{self.issuer}/ticket/issue?{query}"
