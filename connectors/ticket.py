"""``ticket``: the common government pattern — a one-time ticket in the redirect, redeemed
server-to-server for the user's claims.

The gateway (``gateway.ticket``) sends the browser to the system's page with
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
import os
from dataclasses import dataclass
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.base import ConnectorContext, Route
from gateway.identity import Identity

__all__ = ["MIN_SECRET_LENGTH", "Ticket", "TicketConfig"]

MIN_SECRET_LENGTH = 32


class TicketConfig(BaseModel):
    """Settings: ``secret`` or ``secret_env`` (exactly one), ``ttl`` seconds (≤ 60)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretStr | None = None
    secret_env: str | None = None
    ttl: int = Field(default=60, ge=1, le=60)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> TicketConfig:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("secret, secret_env: give exactly one of them")
        self.secret_sha256()  # an unset or short variable fails at load, not per request
        return self

    def secret_sha256(self) -> str:
        """Hex SHA-256 of the secret; ``ValueError`` naming the key if missing or short."""
        if self.secret is not None:
            value = self.secret.get_secret_value()
        else:
            env_name = self.secret_env or ""
            found = os.environ.get(env_name)
            if found is None:
                raise ValueError(f"secret_env: environment variable {env_name} is not set")
            if len(found) < MIN_SECRET_LENGTH:
                raise ValueError(f"secret_env: environment variable {env_name} must hold at "
                                 f"least {MIN_SECRET_LENGTH} characters")
            value = found
        return hashlib.sha256(value.encode("utf-8")).hexdigest()

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
        """``RedirectsLogin``: the gateway issues the ticket and continues to ``target``."""
        query = urlencode({"system": route.system_id, "target": target})
        return f"{self.issuer}/ticket/issue?{query}"
