"""The gateway's long-lived parts, built once from the config and wired by hand.

:func:`build_gateway` is the one place that decides which object gets which: the store,
the key ring, sessions, the authorization server and its tokens, logout, the identity
source, routing, the opened connectors, the gate into systems and the proxy.
``gateway.app`` maps HTTP routes onto a :class:`Gateway`; the CLI uses one without any app.
Tests pass their own store, HTTP client, keys or identity source.

``parts`` opens each part from the config on its own (the CLI uses some alone);
``build`` wires them into a :class:`Gateway`.
"""

from gateway.wiring.build import Gateway, build_gateway

__all__ = ["Gateway", "build_gateway"]
