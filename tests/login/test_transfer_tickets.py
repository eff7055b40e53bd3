"""Transfer tickets (无感切换): single use whatever races, bounded life, on both stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from gateway.login.transfer_tickets import MAX_TTL, Ticket, TransferTickets
from gateway.store import Store
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore

TICKET = Ticket(grant_id="g-1", client_id="hunan-miniapp", subject="c-0001",
                target="http://127.0.0.1:8002/login")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[list[Store]]:
    """Five stores over the same data: five gateway processes (one MemoryStore is shared,
    as it only ever serves one process; five separate clients of the real Redis)."""
    if request.param == "memory":
        shared = MemoryStore(clock=Clock())
        yield [shared] * 5
        await shared.close()
        return
    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    opened: list[Store] = [RedisStore.from_url(url, prefix=prefix) for _ in range(5)]
    yield opened
    for store in opened:
        await store.close()


async def test_a_ticket_is_taken_once_however_many_race(stores: list[Store]) -> None:
    value = await TransferTickets(stores[0]).mint(TICKET)
    takers = [TransferTickets(store) for store in stores for _ in range(4)]
    taken = await asyncio.gather(*(t.take(value) for t in takers))
    assert [t for t in taken if t is not None] == [TICKET]
    assert await TransferTickets(stores[1]).take(value) is None  # and a replay later


async def test_tickets_are_random_and_unknown_ones_take_nothing(stores: list[Store]) -> None:
    tickets = TransferTickets(stores[0])
    first, second = await tickets.mint(TICKET), await tickets.mint(TICKET)
    assert first != second
    assert len(first) >= 43
    assert await tickets.take("x" * 43) is None
    assert await tickets.take("") is None
    assert await tickets.take("a b" * 20) is None  # not a ticket's shape: no store call
    assert await tickets.take(second) == TICKET  # the other ticket is untouched


async def test_a_ticket_expires() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    tickets = TransferTickets(store, ttl=30)
    value = await tickets.mint(TICKET)
    clock.now += 31
    assert await tickets.take(value) is None


async def test_a_ticket_in_redis_lives_its_ttl_and_no_longer(redis_url: str,
                                                              redis_prefix: str) -> None:
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    try:
        await TransferTickets(store, ttl=5).mint(TICKET)
        async with redis.asyncio.Redis.from_url(redis_url) as client:
            left = [await client.pttl(key)
                    async for key in client.scan_iter(match=redis_prefix + "*")]
    finally:
        await store.close()
    assert len(left) == 1
    assert 0 < left[0] <= 5000


def test_the_life_of_a_ticket_is_at_most_a_minute() -> None:
    store = MemoryStore()
    with pytest.raises(ValueError, match=r"1\.\.60"):
        TransferTickets(store, ttl=MAX_TTL + 1)
    with pytest.raises(ValueError, match="not 0"):
        TransferTickets(store, ttl=0)
