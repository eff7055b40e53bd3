"""Automatic pipelining against a real Redis: batching, per-command results, recovery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gateway.store.pipelining import Pipeliner
from tests.support.redis_server import unused_port


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    async with redis.asyncio.Redis.from_url(redis_url, decode_responses=True) as opened:
        yield opened


class CountingPipeliner(Pipeliner):
    """Records how many commands each round trip carried."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        super().__init__(client)
        self.batches: list[int] = []

    async def _send(self, batch: list[Any]) -> None:
        self.batches.append(len(batch))
        await super()._send(batch)


async def test_commands_of_one_turn_share_a_round_trip(client: redis.asyncio.Redis,
                                                       redis_prefix: str) -> None:
    pipeliner = CountingPipeliner(client)
    keys = [f"{redis_prefix}k{n}" for n in range(20)]
    await asyncio.gather(*(pipeliner.command("SET", key, n, "EX", 60)
                           for n, key in enumerate(keys)))
    values = await asyncio.gather(*(pipeliner.command("GET", key) for key in keys))
    assert values == [str(n) for n in range(20)]
    assert pipeliner.batches == [20, 20]


async def test_a_lone_command_goes_by_itself(client: redis.asyncio.Redis,
                                             redis_prefix: str) -> None:
    pipeliner = CountingPipeliner(client)
    assert await pipeliner.command("SET", f"{redis_prefix}a", "1", "EX", 60) is True
    assert await pipeliner.command("GET", f"{redis_prefix}a") == "1"
    assert pipeliner.batches == [1, 1]


async def test_each_command_keeps_its_own_error(client: redis.asyncio.Redis,
                                                redis_prefix: str) -> None:
    pipeliner = Pipeliner(client)
    await client.set(f"{redis_prefix}string", "x", ex=60)
    results = await asyncio.gather(
        pipeliner.command("SET", f"{redis_prefix}ok", "1", "EX", 60),
        pipeliner.command("HGET", f"{redis_prefix}string", "field"),  # WRONGTYPE
        pipeliner.command("GET", f"{redis_prefix}ok"),
        return_exceptions=True)
    assert results[0] is True
    assert isinstance(results[1], ResponseError)
    assert "WRONGTYPE" in str(results[1])
    assert results[2] == "1"


@pytest.mark.parametrize("together", [1, 5])
async def test_a_script_the_server_does_not_know_is_loaded(
        client: redis.asyncio.Redis, redis_prefix: str, together: int) -> None:
    # A script no server has seen (its text is unique), as after a restart or SCRIPT FLUSH.
    script = client.register_script(
        f"-- {uuid.uuid4()}\nreturn redis.call('SET', KEYS[1], ARGV[1], 'EX', 60)")
    assert await client.script_exists(script.sha) == [False]
    pipeliner = CountingPipeliner(client)
    keys = [f"{redis_prefix}s{n}" for n in range(together)]
    results = await asyncio.gather(*(pipeliner.script(script, [key], [str(n)])
                                     for n, key in enumerate(keys)))
    assert results == ["OK"] * together
    assert [await client.get(key) for key in keys] == [str(n) for n in range(together)]
    assert pipeliner.batches == [together]


async def test_a_cancelled_caller_does_not_disturb_the_others(
        client: redis.asyncio.Redis, redis_prefix: str) -> None:
    pipeliner = Pipeliner(client)
    await client.set(f"{redis_prefix}v", "kept", ex=60)
    doomed = asyncio.ensure_future(pipeliner.command("GET", f"{redis_prefix}v"))
    survivor = asyncio.ensure_future(pipeliner.command("GET", f"{redis_prefix}v"))
    await asyncio.sleep(0)
    doomed.cancel()
    assert await survivor == "kept"
    assert doomed.cancelled()


async def test_a_dead_server_fails_every_waiter() -> None:
    dead = redis.asyncio.Redis.from_url(f"redis://127.0.0.1:{unused_port()}/0",
                                        socket_connect_timeout=2)
    try:
        pipeliner = Pipeliner(dead)
        results = await asyncio.gather(*(pipeliner.command("GET", f"k{n}") for n in range(3)),
                                       return_exceptions=True)
        assert all(isinstance(result, RedisConnectionError) for result in results), results
    finally:
        await dead.aclose()
