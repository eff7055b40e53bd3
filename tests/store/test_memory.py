"""MemoryStore's own promises: expired records do not pile up, and exact expiry."""

from __future__ import annotations

import pytest

from gateway.store import MemoryStore, open_store


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> MemoryStore:
    return MemoryStore(clock=clock)


async def test_expiry_is_exact(store: MemoryStore, clock: Clock) -> None:
    await store.upsert("ticket", "t", {"a": 1}, 60)
    clock.now += 59.999
    assert await store.find("ticket", "t") == {"a": 1}
    clock.now += 0.001
    assert await store.find("ticket", "t") is None


async def test_sweep_purges_expired_records(store: MemoryStore, clock: Clock) -> None:
    for n in range(10):
        await store.upsert("code", f"short{n}", {"grant_id": f"g{n}"}, 5)
    for n in range(5):
        await store.upsert("refresh", f"long{n}", {"grant_id": "kept"}, 100)
    clock.now += 10
    assert len(store) == 15, "expired records linger until read or swept"

    assert store.sweep() == 10

    assert len(store) == 5
    assert set(store._grants) == {"kept"}, "the grant index shrinks with the records"


async def test_reading_an_expired_record_purges_it(store: MemoryStore, clock: Clock) -> None:
    await store.upsert("code", "c", {"grant_id": "g"}, 5)
    clock.now += 5
    assert await store.consume("code", "c") is None
    assert len(store) == 0
    assert store._grants == {}


async def test_writes_sweep_by_themselves(store: MemoryStore, clock: Clock) -> None:
    for n in range(100):
        await store.upsert("code", f"c{n}", {}, 1)
    clock.now += 61
    await store.upsert("code", "fresh", {}, 60)
    assert len(store) == 1


async def test_revoke_does_not_count_expired_records(store: MemoryStore, clock: Clock) -> None:
    await store.upsert("code", "c", {"grant_id": "g"}, 5)
    await store.upsert("refresh", "r", {"grant_id": "g"}, 500)
    clock.now += 10
    assert await store.revoke_by_grant("g") == 1
    assert len(store) == 0


async def test_every_entry_has_an_expiry(store: MemoryStore, clock: Clock) -> None:
    await store.upsert("code", "c", {}, 5)
    assert all(record.expires_at == clock.now + 5 for record in store._records.values())


async def test_non_json_payload_is_refused_and_writes_nothing(store: MemoryStore) -> None:
    with pytest.raises(TypeError):
        await store.upsert("code", "c", {"when": object()}, 5)
    assert len(store) == 0


def test_open_store_memory() -> None:
    assert isinstance(open_store("memory", redis_url=None, prefix="roam:"), MemoryStore)


@pytest.mark.parametrize("backend", ["", "Memory", "sqlite"])
def test_open_store_refuses_unknown_backends(backend: str) -> None:
    with pytest.raises(ValueError, match="backend"):
        open_store(backend, redis_url=None, prefix="roam:")

