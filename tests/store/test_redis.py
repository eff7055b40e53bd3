"""RedisStore's own promises: StoreError at the boundary, Cluster-ready keys, index TTLs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from redis.exceptions import RedisError

from gateway.errors import StoreError
from gateway.store import RedisStore, open_store
from tests.support.redis_server import unused_port


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client for looking behind the store's back (decoded, for readable asserts)."""
    async with redis.asyncio.Redis.from_url(redis_url, decode_responses=True) as client:
        yield client


@pytest.fixture
async def store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    opened = RedisStore.from_url(redis_url, prefix=redis_prefix)
    yield opened
    await opened.close()


async def keys_under(raw: redis.asyncio.Redis, prefix: str) -> set[str]:
    return {key async for key in raw.scan_iter(match=prefix + "*")}


async def test_dead_server_raises_store_error_without_secrets() -> None:
    store = RedisStore.from_url(f"redis://:hunter2-secret@127.0.0.1:{unused_port()}/0")
    try:
        for call in (
            store.find("code", "abc"),
            store.upsert("code", "abc", {"grant_id": "g"}, 60),
            store.consume("code", "abc"),
            store.destroy("code", "abc"),
            store.incr("login_failures", "abc", 60),
            store.revoke_by_grant("g"),
        ):
            with pytest.raises(StoreError) as caught:
                await call
            assert isinstance(caught.value.__cause__, RedisError)
            assert "hunter2" not in str(caught.value)
            assert "abc" not in str(caught.value), "record ids are secrets"
    finally:
        await store.close()


async def test_a_connection_closed_under_the_writer_is_a_store_error(
        store: RedisStore) -> None:
    """uvloop raises RuntimeError when redis-py writes to a connection a killed node
    closed (tests/store/test_failover.py saw it once on a Cluster): that is the store
    failing (503), not a bug (500). Any other RuntimeError still is one."""
    closed = RuntimeError("unable to perform operation on <TCPTransport closed=True "
                          "reading=False 0x1>; the handler is closed")
    with pytest.raises(StoreError) as caught, store._converted("find"):
        raise closed
    assert caught.value.__cause__ is closed
    with pytest.raises(RuntimeError, match="a bug"), store._converted("find"):
        raise RuntimeError("a bug")


def test_bad_url_raises_store_error_without_the_url() -> None:
    with pytest.raises(StoreError) as caught:
        RedisStore.from_url("http://:hunter2@example.invalid/")
    assert "hunter2" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


async def test_keys_are_hash_tagged(
    store: RedisStore, raw: redis.asyncio.Redis, redis_prefix: str
) -> None:
    await store.upsert("code", "abc", {"grant_id": "g-1"}, 60)
    await store.upsert("session", "s1", {"sub": "x"}, 60)
    assert await keys_under(raw, redis_prefix) == {
        f"{redis_prefix}{{code:abc}}",
        f"{redis_prefix}{{session:s1}}",
        f"{redis_prefix}grant:{{g-1}}",
    }
    assert await raw.smembers(f"{redis_prefix}grant:{{g-1}}") == {f"{redis_prefix}{{code:abc}}"}


async def test_grant_index_ttl_covers_its_longest_member(
    store: RedisStore, raw: redis.asyncio.Redis, redis_prefix: str
) -> None:
    grant_key = f"{redis_prefix}grant:{{g}}"
    await store.upsert("code", "c", {"grant_id": "g"}, 60)
    assert 30_000 < await raw.pttl(grant_key) <= 65_000  # ttl + margin; a busy machine lags
    await store.upsert("refresh", "r", {"grant_id": "g"}, 86_400)
    await store.upsert("access", "a", {"grant_id": "g"}, 600)  # shorter: must not lower it

    grant_ttl = await raw.pttl(grant_key)
    assert 86_000_000 < grant_ttl <= 86_405_000  # not lowered to 600 s
    for member in await raw.smembers(grant_key):
        assert 0 < await raw.pttl(member) <= grant_ttl


async def test_grant_index_without_ttl_gets_one(
    store: RedisStore, raw: redis.asyncio.Redis, redis_prefix: str
) -> None:
    grant_key = f"{redis_prefix}grant:{{g}}"
    await raw.sadd(grant_key, "left by an older writer")  # PTTL -1
    await store.upsert("code", "c", {"grant_id": "g"}, 60)
    assert 30_000 < await raw.pttl(grant_key) <= 65_000  # ttl + margin; a busy machine lags


async def test_consume_keeps_the_ttl(
    store: RedisStore, raw: redis.asyncio.Redis, redis_prefix: str
) -> None:
    key = f"{redis_prefix}{{code:c}}"
    await store.upsert("code", "c", {"a": 1}, 60)
    before = await raw.pttl(key)
    assert await store.consume("code", "c") == ({"a": 1}, True)
    assert 0 < await raw.pttl(key) <= before


async def test_consume_of_an_expired_key_creates_nothing(
    store: RedisStore, raw: redis.asyncio.Redis, redis_prefix: str
) -> None:
    assert await store.consume("code", "gone") is None
    assert await keys_under(raw, redis_prefix) == set()


async def test_revoke_clears_the_index(
    store: RedisStore, raw: redis.asyncio.Redis, redis_prefix: str
) -> None:
    await store.upsert("code", "c", {"grant_id": "g"}, 60)
    await store.upsert("refresh", "r", {"grant_id": "g"}, 600)
    assert await store.revoke_by_grant("g") == 2
    assert await keys_under(raw, redis_prefix) == set()


async def test_foreign_data_is_a_store_error(
    store: RedisStore, raw: redis.asyncio.Redis, redis_prefix: str
) -> None:
    await raw.set(f"{redis_prefix}{{code:str}}", "a plain string", ex=60)
    await raw.hset(f"{redis_prefix}{{code:junk}}", "p", "not json")
    await raw.expire(f"{redis_prefix}{{code:junk}}", 60)
    await raw.hset(f"{redis_prefix}{{code:list}}", "p", "[1, 2]")
    await raw.expire(f"{redis_prefix}{{code:list}}", 60)

    with pytest.raises(StoreError, match="WRONGTYPE"):
        await store.find("code", "str")
    with pytest.raises(StoreError, match="WRONGTYPE"):
        await store.consume("code", "str")
    with pytest.raises(StoreError, match="not JSON"):
        await store.find("code", "junk")
    with pytest.raises(StoreError, match="not a JSON object"):
        await store.consume("code", "list")


async def test_works_with_a_decoding_client(redis_url: str, redis_prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    store = RedisStore(client, prefix=redis_prefix)
    try:
        await store.upsert("code", "c", {"grant_id": "g", "name": "李四"}, 60)
        assert await store.find("code", "c") == {"grant_id": "g", "name": "李四"}
        assert await store.consume("code", "c") == ({"grant_id": "g", "name": "李四"}, True)
        assert await store.revoke_by_grant("g") == 1
    finally:
        await store.close()


async def test_open_store_redis(redis_url: str, redis_prefix: str) -> None:
    store = open_store("redis", redis_url=redis_url, prefix=redis_prefix)
    try:
        assert isinstance(store, RedisStore)
        await store.upsert("code", "c", {"a": 1}, 60)
        assert await store.find("code", "c") == {"a": 1}
    finally:
        await store.close()


def test_open_store_redis_needs_a_url() -> None:
    with pytest.raises(ValueError, match="redis_url"):
        open_store("redis", redis_url=None, prefix="roam:")
