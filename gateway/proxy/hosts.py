"""Host-based routing: a system served on a host name of its own.

A request whose ``Host`` is one of a system's ``hosts`` (``systems.toml``) goes to that
system's proxy route whatever its path — ``https://gjj.sso.example/a/b`` is handled as
``/s/<system>/a/b`` — so none of the gateway's own endpoints answer on a system's host.
The original host travels in the scope (``HOST_ROUTED``) so the proxy can answer in that
host's terms: no ``/s/<system>`` prefix in ``Location`` headers, absolute URLs back to the
page after login.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import Scope

from gateway.urls import host_name

__all__ = ["HOST_ROUTED", "host_routed"]

HOST_ROUTED = "roam.host"
"""Scope key: the ``Host`` header (port included) a host-routed request came with."""


def host_routed(scope: Scope, hosts: Mapping[str, str]) -> Scope:
    """``scope`` as the proxy route of the system whose host it came on (a copy, marked
    with ``HOST_ROUTED``), or unchanged. ``hosts``: host name → system id."""
    host = _host_header(scope)
    system = hosts.get(host_name(host))
    if system is None:
        return scope
    routed = dict(scope)
    prefix = f"/s/{system}"
    routed["path"] = prefix + scope["path"]
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        routed["raw_path"] = prefix.encode() + raw
    routed[HOST_ROUTED] = host
    return routed


def _host_header(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            return str(value.decode("latin-1"))
    return ""
