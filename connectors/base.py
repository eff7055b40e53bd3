"""The connector interface: what a connector sees, what it may do, what it may release.

A connector turns (identity, outgoing request, route) into the request a legacy system
understands. Its capabilities are small ``typing.Protocol``s, checked with ``isinstance``:

- ``PresentsIdentity``: adds headers to a proxied request (signed-header, jwt-assertion);
- ``RedirectsLogin``: sends the browser through the system's own login (cas, ticket, oidc);
- ``RelyingParty``: the system is an OIDC client of the gateway (oidc), so the config
  loader checks its ``client_id`` is registered and never serves it through the proxy.

Connectors keep no state of their own: anything needed between two requests goes into
the store through the gateway. A connector is built from its validated config by
``ConnectorConfig.open(ctx)``; the registry (``connectors.registry``) maps type names to
config classes.

Two rules hold for every connector:

- ``released_claims`` is the one place an identity is projected for a system: only the
  claims registered for it, ID and phone numbers masked unless it is privileged, and
  nothing that would complete a masked one (``gateway.privacy.release_claims``, which
  ``/userinfo`` uses too).
- ``strip_client_identity`` runs before any connector: a client cannot send ``X-Roam-*``
  or ``Authorization`` headers of its own to a system. The proxy calls it, and every
  built-in ``present()`` calls it again (defence in depth, one cheap pass) and replaces
  the headers it sets, so a forged copy never sits beside the real one even if a caller
  forgets.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from gateway.identity import Identity
from gateway.keys import KeyRing

__all__ = [
    "CLIENT_IDENTITY_PREFIX",
    "Connector",
    "ConnectorConfig",
    "ConnectorContext",
    "Outgoing",
    "PresentsIdentity",
    "RedirectsLogin",
    "RelyingParty",
    "Route",
    "drop_headers",
    "released_claims",
    "strip_client_identity",
]

#: Header prefix that only the gateway may set towards a system.
CLIENT_IDENTITY_PREFIX = "x-roam-"

@dataclass(frozen=True)
class Route:
    """What a connector knows of the system a request goes to."""

    system_id: str
    system_name: str
    base_url: str  # the chosen instance
    claims: frozenset[str] = frozenset()  # claims registered for the system
    privileged: bool = False  # approved for unmasked ID and phone numbers
    audience: str = ""  # defaults to system_id

    def __post_init__(self) -> None:
        if not self.audience:
            object.__setattr__(self, "audience", self.system_id)


@dataclass
class Outgoing:
    """The proxied request as far as connectors see it; the proxy owns the body."""

    method: str
    path: str  # path with query
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ConnectorContext:
    """What the gateway lends a connector when it is opened."""

    keys: KeyRing
    issuer: str


@runtime_checkable
class Connector(Protocol):
    """Any opened connector; what it can do is told by the capability protocols."""

    @property
    def type_name(self) -> str: ...


@runtime_checkable
class PresentsIdentity(Protocol):
    """Adds the identity to a proxied request, in the form the system understands."""

    def present(self, identity: Identity, outgoing: Outgoing, route: Route, *,
                now: float) -> None: ...


@runtime_checkable
class RedirectsLogin(Protocol):
    """Sends the browser through the system's own login (cas, ticket); ``target`` is the
    deep link to arrive at. Returns the URL to redirect to."""

    async def login_url(self, identity: Identity, route: Route, target: str) -> str: ...


@runtime_checkable
class RelyingParty(Protocol):
    """Settings (or an opened connector) of a system that is an OIDC client of the gateway."""

    @property
    def client_id(self) -> str: ...


class ConnectorConfig(Protocol):
    """A connector type's settings: a pydantic model (``extra="forbid"``) with ``open``."""

    def open(self, ctx: ConnectorContext) -> Connector: ...


def released_claims(identity: Identity, route: Route) -> dict[str, Any]:
    """The identity as ``route``'s system may see it: ``sub``, ``acr`` and its claims.

    Only claims registered for the system (``route.claims``) that the identity has are
    released (``region`` and, for a legal person, ``agent`` included), by the gateway's
    one release rule (``Identity.release``): ``id_number`` and ``phone_number`` masked —
    in ``agent`` too — unless the system is privileged, and no birth date beside a masked
    ID number (it would give the hidden digits back).
    """
    out: dict[str, Any] = {"sub": identity.subject, "acr": identity.acr}
    out.update(identity.release(route.claims - out.keys(), privileged=route.privileged))
    return out


def drop_headers(headers: list[tuple[str, str]], *, prefix: str | tuple[str, ...] = "",
                 names: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """``headers`` without those starting with ``prefix`` (one or several) or named in
    ``names``.

    Both compare case-insensitively; ``names`` must be lower case. An empty prefix
    matches nothing.
    """
    prefixes = _lower_prefixes((prefix,) if isinstance(prefix, str) else prefix)
    return [
        (name, value)
        for name, value in headers
        if not ((lower := name.lower()) in names or lower.startswith(prefixes))
    ]


@functools.lru_cache(maxsize=64)
def _lower_prefixes(prefixes: tuple[str, ...]) -> tuple[str, ...]:
    """Lower case, empty ones dropped (``str.startswith(())`` is False). Cached: the proxy
    strips with the same few prefixes on every request."""
    return tuple(p.lower() for p in prefixes if p)


_CLIENT_IDENTITY_NAMES = frozenset({"authorization"})


def strip_client_identity(headers: list[tuple[str, str]], *, also_prefix: str = "",
                          also_names: frozenset[str] = frozenset()
                          ) -> list[tuple[str, str]]:
    """Drop every ``X-Roam-*`` and ``Authorization`` header a client sent itself (and,
    in the same pass, those a connector is about to set: ``also_prefix``, ``also_names``).

    The proxy calls this before any connector's ``present()``; the built-in connectors
    call it again inside ``present()``.
    """
    names = _CLIENT_IDENTITY_NAMES | also_names if also_names else _CLIENT_IDENTITY_NAMES
    return drop_headers(headers, prefix=(CLIENT_IDENTITY_PREFIX, also_prefix), names=names)
