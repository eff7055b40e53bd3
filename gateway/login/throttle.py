"""Failed logins per client address: a password spray over many accounts slows to a stop.

等保 2.0 asks for protection against brute force, and a per-account lockout alone lets one
client try a common password on every account. So every login attempt from an address
takes a slot in that address's window (``[login] source_max_failures`` per
``source_window`` seconds) before any password is checked; a successful login gives its
slot back, so only failures use the window up and many honest people behind one NAT are
not throttled by each other's successes.

The address is the TCP peer's. Behind load balancers or reverse proxies listed in
``[gateway] trusted_proxies`` it is the right-most ``X-Forwarded-For`` entry that is not
one of them (``gateway.addresses``); from anyone else the header is ignored, so a client
cannot pick the key it is counted under. An IPv6 client counts
by its /64, the block one subscriber gets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.addresses import parse_address, scope_address
from gateway.attempts import Attempts, Slot
from gateway.store.base import Kind, Store

__all__ = ["SourceThrottle", "source_key"]


def source_key(address: str) -> str:
    """The key an address is counted under: IPv4 as is, IPv6 by its /64."""
    parsed = parse_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed) if parsed is not None else "unknown"


class SourceThrottle:
    """Failed-login windows per client address (``Kind.LOGIN_SOURCE_FAILURES``)."""

    def __init__(self, store: Store, *, limit: int, window: int,
                 trusted_proxies: Iterable[str] = ()) -> None:
        self.attempts = Attempts(store, Kind.LOGIN_SOURCE_FAILURES, limit=limit, window=window)
        self.trusted = tuple(ipaddress.ip_network(n, strict=False) for n in trusted_proxies)

    def address(self, scope: Mapping[str, Any]) -> str:
        """The client address of an ASGI request ``scope``."""
        return scope_address(scope, self.trusted)

    async def reserve(self, address: str) -> Slot:
        """A slot for one login attempt from ``address``; check ``Slot.refused``."""
        return await self.attempts.reserve(source_key(address))

    async def succeeded(self, address: str) -> None:
        """The attempt logged someone in: it does not count against the address."""
        await self.attempts.give_back(source_key(address))
