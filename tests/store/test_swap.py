"""``swap``, optimistic concurrency, on both stores: a write that wins only over the
version it read (or over nothing)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.store import Store
from tests.store.conftest import Elapse

KIND = "health_state"


async def test_swap_creates_only_where_nothing_is(store: Store) -> None:
    assert await store.swap(KIND, "a", {"n": 1}, 60, expected=None, version="1")
    assert not await store.swap(KIND, "a", {"n": 2}, 60, expected=None, version="1")
    found = await store.find_versioned(KIND, "a")
    assert found is not None
    assert (found.payload, found.version) == ({"n": 1}, "1")


async def test_swap_writes_over_the_version_it_read(store: Store) -> None:
    await store.upsert(KIND, "a", {"n": 1}, 60, version="1")
    assert await store.swap(KIND, "a", {"n": 2}, 60, expected="1", version="2")
    assert not await store.swap(KIND, "a", {"n": 3}, 60, expected="1", version="3")
    found = await store.find_versioned(KIND, "a")
    assert found is not None
    assert (found.payload, found.version) == ({"n": 2}, "2")


async def test_swap_may_keep_the_version(store: Store) -> None:
    """A lease renewed by its holder: same version, new payload and TTL."""
    assert await store.swap(KIND, "lease", {"at": 1}, 60, expected=None, version="node-a")
    assert await store.swap(KIND, "lease", {"at": 2}, 60, expected="node-a", version="node-a")
    assert not await store.swap(KIND, "lease", {"at": 3}, 60, expected="node-b",
                                version="node-b")
    assert await store.find(KIND, "lease") == {"at": 2}


async def test_swap_over_a_missing_or_expired_record_needs_none(store: Store,
                                                              elapse: Elapse) -> None:
    assert not await store.swap(KIND, "a", {"n": 1}, 60, expected="1", version="2")
    assert await store.find(KIND, "a") is None
    await store.upsert(KIND, "a", {"n": 1}, 1, version="1")
    await elapse(1.2)
    assert not await store.swap(KIND, "a", {"n": 2}, 60, expected="1", version="2")
    assert await store.swap(KIND, "a", {"n": 3}, 60, expected=None, version="3")
    assert await store.find(KIND, "a") == {"n": 3}


async def test_swap_matches_an_unversioned_record_by_the_empty_version(store: Store) -> None:
    await store.upsert(KIND, "a", {"n": 1}, 60)
    assert not await store.swap(KIND, "a", {"n": 2}, 60, expected=None, version="2")
    assert await store.swap(KIND, "a", {"n": 2}, 60, expected="", version="2")


async def test_swap_sets_the_ttl_it_is_given(store: Store, elapse: Elapse) -> None:
    await store.upsert(KIND, "a", {"n": 1}, 60, version="1")
    assert await store.swap(KIND, "a", {"n": 2}, 1, expected="1", version="2")
    await elapse(1.2)
    assert await store.find(KIND, "a") is None


async def test_swap_replaces_a_counter_only_where_nothing_is_expected(store: Store) -> None:
    """A counter is no record: ``expected=None`` writes over it, a version never matches."""
    await store.incr(KIND, "a", 60)
    assert not await store.swap(KIND, "a", {"n": 1}, 60, expected="", version="1")
    assert await store.swap(KIND, "a", {"n": 1}, 60, expected=None, version="1")
    assert await store.find(KIND, "a") == {"n": 1}


async def test_swap_has_one_winner_under_concurrency(peers: list[Store]) -> None:
    await peers[0].upsert(KIND, "a", {"n": 0}, 60, version="0")
    won = await asyncio.gather(*(peers[n % len(peers)].swap(
        KIND, "a", {"n": n}, 60, expected="0", version=f"v{n}") for n in range(20)))
    assert won.count(True) == 1
    found = await peers[0].find_versioned(KIND, "a")
    assert found is not None
    assert found.version == f"v{won.index(True)}"
    assert found.payload == {"n": won.index(True)}


async def test_swap_creates_once_under_concurrency(peers: list[Store]) -> None:
    won = await asyncio.gather(*(peers[n % len(peers)].swap(
        KIND, "lease", {"node": n}, 60, expected=None, version=f"node-{n}") for n in range(20)))
    assert won.count(True) == 1


async def test_swap_joins_the_grant_of_its_payload(store: Store) -> None:
    assert await store.swap(KIND, "a", {"grant_id": "g1"}, 60, expected=None, version="1")
    assert await store.revoke_by_grant("g1") == 1


@pytest.mark.parametrize(("ttl", "version", "expected"), [
    (0, "1", None), (1.5, "1", None), (60, "", None), (60, "a\nb", None), (60, "1", "a\nb")])
async def test_bad_swap_is_refused_and_writes_nothing(store: Store, ttl: Any, version: Any,
                                                      expected: Any) -> None:
    with pytest.raises(ValueError, match=r"ttl|version"):
        await store.swap(KIND, "a", {"n": 1}, ttl, expected=expected, version=version)
    assert await store.find(KIND, "a") is None


async def test_a_payload_json_cannot_hold_is_refused_whatever_the_version(store: Store) -> None:
    await store.upsert(KIND, "a", {"n": 1}, 60, version="1")
    for expected in ("1", "other", None):
        with pytest.raises(TypeError):
            await store.swap(KIND, "a", {"n": object()}, 60, expected=expected, version="2")
    assert await store.find(KIND, "a") == {"n": 1}
