"""The stores under test, for the conformance suites: every test that asks for ``store``
runs against MemoryStore, a real Redis, a real Redis Cluster and Redis behind Sentinel."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.store import MemoryStore, Store
from tests.support.stores import FakeClock, Topology

__all__ = ["Elapse", "Expiries", "FakeClock"]

Elapse = Callable[[float], Awaitable[None]]
Expiries = Callable[[], Awaitable[list[float]]]


@pytest.fixture
def store(any_store: Store) -> Store:
    """Every test here runs on each topology (tests/support/stores.py)."""
    return any_store


@pytest.fixture
def elapse(store: Store, clock: FakeClock) -> Elapse:
    """Let time pass: the fake clock for memory, real seconds for Redis's own expiry."""

    async def run(seconds: float) -> None:
        if isinstance(store, MemoryStore):
            clock.now += seconds
        else:
            await asyncio.sleep(seconds)

    return run


@pytest.fixture
def expiries(topology: Topology, store: Store, clock: FakeClock) -> Expiries:
    """Seconds left on everything the store holds (inf for anything kept forever)."""

    async def memory() -> list[float]:
        assert isinstance(store, MemoryStore)
        records = store._records
        # The grant index has no TTL of its own: it must never outlive its records.
        for keys in store._grants.values():
            assert keys <= records.keys()
        counters = [c.expires_at - clock.now for c in store._counters.values()]
        return [record.expires_at - clock.now for record in records.values()] + counters

    async def in_redis() -> list[float]:
        assert topology.raw is not None
        async with topology.raw() as client:
            keys = [key async for key in client.scan_iter(match=topology.prefix + "*")]
            left = [await client.pttl(key) for key in keys]
        return [math.inf if ms == -1 else ms / 1000 for ms in left]

    return memory if isinstance(store, MemoryStore) else in_redis


@pytest.fixture
async def peers(topology: Topology, store: Store) -> AsyncIterator[list[Store]]:
    """Five stores sharing ``store``'s data, standing in for five gateway processes: the
    same MemoryStore (one process is all it serves), or five separate Redis clients."""
    if isinstance(store, MemoryStore):
        yield [store] * 5
        return
    opened: list[Store] = [topology.open() for _ in range(5)]
    yield opened
    for peer in opened:
        await peer.close()
