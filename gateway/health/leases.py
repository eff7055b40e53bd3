"""Leases: which gateway process does an instance's periodic work (its probes).

A lease is a store record whose version is the holder's node id, written with ``swap``:
taken only where none is (``expected=None``), renewed only by its holder (``expected`` =
the node id). It lives ``ttl`` seconds (about one probe interval) and its holder renews
it well before that, so it stays with one process; a process that dies stops renewing,
and another takes it over once it has run out. A process that stops in good order lets
its leases run out within a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.store.base import Kind, Store

__all__ = ["Leases"]


class Leases:
    def __init__(self, store: Store, node: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.node = node
        self.clock = clock
        self.held: set[str] = set()

    async def hold(self, id: str, ttl: int) -> bool:
        """Renew the lease on ``id`` if this process holds it, else take it if it is free;
        whether this process holds it now (for ``ttl`` seconds)."""
        payload = {"node": self.node, "at": self.clock()}
        if id in self.held:
            if await self.store.swap(Kind.HEALTH_LEASE, id, payload, ttl,
                                     expected=self.node, version=self.node):
                return True
            self.held.discard(id)
        if await self.store.swap(Kind.HEALTH_LEASE, id, payload, ttl, expected=None,
                                 version=self.node):
            self.held.add(id)
            return True
        return False

    async def holder(self, id: str) -> str | None:
        """The node holding the lease on ``id``, if any."""
        found = await self.store.find_versioned(Kind.HEALTH_LEASE, id)
        return found.version if found is not None else None

    async def let_go(self) -> None:
        """Let every lease held run out within a second (the process is stopping)."""
        for id in sorted(self.held):
            await self.store.swap(Kind.HEALTH_LEASE, id, {"node": self.node, "at": 0}, 1,
                                  expected=self.node, version=self.node)
        self.held.clear()
