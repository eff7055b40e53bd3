"""``oidc``: a system that is itself an OpenID Connect relying party of the gateway.

Nothing is proxied and no ticket is made: the gateway sends the person to the system's
own login page (``login_path`` on the chosen instance), and the system then asks the
gateway's ``/authorize`` as the client it registered, which applies the level and the
claims approved for that client. Settings::

    connector = "oidc"
    connector_settings = { client_id = "xiangtan-gov", login_path = "/login" }

``client_id`` must be a client of ``clients.toml`` (the config loader checks it);
``login_path`` defaults to ``/login``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from connectors.base import ConnectorContext, Route
from gateway.identity import Identity

__all__ = ["OidcConfig", "OidcRelyingParty"]


class OidcConfig(BaseModel):
    """Settings: ``client_id`` (the registered client it is) and ``login_path``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(pattern=r"^[A-Za-z0-9._\-]{3,64}$")
    login_path: str = Field(default="/login", pattern=r"^/([^/\s?#][^\s?#]*)?$")

    def open(self, ctx: ConnectorContext) -> OidcRelyingParty:
        return OidcRelyingParty(client_id=self.client_id, login_path=self.login_path)


@dataclass(frozen=True)
class OidcRelyingParty:
    """The opened connector: which client the system is, and where its login starts."""

    client_id: str
    login_path: str = "/login"
    type_name: str = "oidc"

    async def login_url(self, identity: Identity, route: Route, target: str) -> str:
        """``RedirectsLogin``: the system's own login, which comes back through the
        gateway's ``/authorize`` and finds the session there."""
        return route.base_url.rstrip("/") + self.login_path
