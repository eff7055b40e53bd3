"""The client's address of a request: the TCP peer, or behind trusted proxies the
right-most ``X-Forwarded-For`` hop that is not one of them.

One rule for everything that names a client by its address: the failed-login throttle
counts under it, and the audit trail records it as an event's source. From a peer that
is not a trusted proxy the header is ignored, so a client cannot choose what it is
recorded or counted as (nginx's ``real_ip_recursive`` reads it the same way).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["Address", "Network", "client_address", "parse_address", "scope_address",
           "scope_peer"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=4096)  # clients come back: parsing costs more than the look-up
def parse_address(text: str) -> Address | None:
    """An IP address, IPv4-mapped IPv6 as IPv4; None if ``text`` is not one."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(peer: str, forwarded_for: Iterable[str],
                   trusted: Sequence[Network]) -> str:
    """The client's address: ``peer`` unless it is a trusted proxy, then the right-most
    ``X-Forwarded-For`` hop that is not. Unparsable values stop the walk at the last
    trusted hop. "" when the peer is unknown."""
    current = parse_address(peer)
    if current is None:
        return ""
    if not trusted:  # most gateways, and every event of theirs: nothing else to read
        return _spelled(current)
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    while hops and any(current in network for network in trusted):
        found = parse_address(hops.pop())
        if found is None:
            break
        current = found
    return _spelled(current)


@functools.lru_cache(maxsize=4096)
def _spelled(address: Address) -> str:
    return str(address)


def scope_peer(scope: Mapping[str, Any], trusted: Sequence[Network]
               ) -> tuple[str, tuple[str, ...]]:
    """What an ASGI request's client address is worked out from (:func:`client_address`):
    the peer's address, and the ``X-Forwarded-For`` values when a proxy is trusted."""
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    if not trusted:  # nothing in front is believed: the header is never read
        return peer, ()
    return peer, tuple(value.decode("latin-1") for name, value in scope.get("headers", ())
                       if name == b"x-forwarded-for")


def scope_address(scope: Mapping[str, Any], trusted: Sequence[Network]) -> str:
    """The client address of an ASGI request ``scope``."""
    return client_address(*scope_peer(scope, trusted), trusted)
