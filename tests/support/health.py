"""Health for tests that build parts by hand: shared state in a store, no probes."""

from __future__ import annotations

from typing import Any

from gateway.config import HealthSection, Systems
from gateway.health import HealthChecks
from gateway.store import MemoryStore, Store


def local_health(systems: Systems, store: Store | None = None, *, node: str = "test-node",
                 **rules: Any) -> HealthChecks:
    """Every system's instances judged by traffic (as the proxy's are), over ``store`` (a
    MemoryStore by default), probing nothing; ``rules`` are ``[health]`` keys."""
    return HealthChecks(store or MemoryStore(), systems, HealthSection(**{"active": False,
                                                                          **rules}),
                        http=None, passive=[system.id for system in systems], node=node)
