"""Connectors: how the gateway presents a person to a legacy system that does not speak
OpenID Connect.

Everything a third-party connector needs is importable from here — the capabilities it
implements, what it is given (identity, outgoing request, route) and the helpers that keep
the rules (``released_claims``, ``strip_client_identity``) — as are the registry's
functions. ``base`` holds the interface, ``registry`` the type names; the built-in types
are ``signed_header``, ``jwt_assertion``, ``cas``, ``ticket`` and ``oidc``.
"""

from connectors.base import (
    CLIENT_IDENTITY_PREFIX,
    Connector,
    ConnectorConfig,
    ConnectorContext,
    Outgoing,
    PresentsIdentity,
    RedirectsLogin,
    RelyingParty,
    Route,
    drop_headers,
    released_claims,
    strip_client_identity,
)
from connectors.registry import (
    ENTRY_POINT_GROUP,
    UnknownConnectorType,
    known_types,
    load_entry_points,
    parse_connector,
    register,
)
from gateway.errors import ConfigError
from gateway.identity import Identity, PersonKind
from gateway.keys import KeyRing

__all__ = [
    "CLIENT_IDENTITY_PREFIX",
    "ENTRY_POINT_GROUP",
    "ConfigError",
    "Connector",
    "ConnectorConfig",
    "ConnectorContext",
    "Identity",
    "KeyRing",
    "Outgoing",
    "PersonKind",
    "PresentsIdentity",
    "RedirectsLogin",
    "RelyingParty",
    "Route",
    "UnknownConnectorType",
    "drop_headers",
    "known_types",
    "load_entry_points",
    "parse_connector",
    "register",
    "released_claims",
    "strip_client_identity",
]
