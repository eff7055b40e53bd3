"""The WeChat access token: fetched once for all processes, refreshed before it ends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from demo.platforms import WeChatPlatform
from gateway.channels.stable_token import StableToken
from gateway.store.redis import RedisStore
from tests.support.servers import serve

APPID, SECRET = "wx-token-test", "wx-token-test-secret-0123456789ab"


@pytest.fixture
def platform() -> Iterator[tuple[WeChatPlatform, str]]:
    wechat = WeChatPlatform(APPID, SECRET, token_ttl=7200)
    with serve(wechat.app()) as url:
        yield wechat, url


def tokens(store: RedisStore, http: httpx.AsyncClient, url: str, margin: int,
           count: int) -> list[StableToken]:
    return [StableToken(http=http, store=store, base_url=url, appid=APPID, secret=SECRET,
                        margin=margin) for _ in range(count)]


async def test_many_processes_racing_fetch_one_token(
        platform: tuple[WeChatPlatform, str], redis_url: str, redis_prefix: str) -> None:
    wechat, url = platform
    # each StableToken stands for one process: its own store connection and HTTP client
    stores = [RedisStore.from_url(redis_url, prefix=redis_prefix) for _ in range(4)]
    async with httpx.AsyncClient() as http:
        holders = [t for s in stores for t in tokens(s, http, url, 300, 3)]
        got = await asyncio.gather(*(t.get() for t in holders))
        assert len(set(got)) == 1
        assert wechat.stable_token_calls == 1
        assert await holders[0].get() == got[0]  # cached: no new call
        assert wechat.stable_token_calls == 1
    for store in stores:
        await store.close()


async def test_a_token_about_to_end_is_refreshed_once(
        platform: tuple[WeChatPlatform, str], redis_url: str, redis_prefix: str) -> None:
    wechat, url = platform
    wechat.token_ttl = 200  # below the margin: every token is "about to end"
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    async with httpx.AsyncClient() as http:
        [token] = tokens(store, http, url, 300, 1)
        first = await token.get()
        second = await token.get()
        assert first != second
        assert wechat.stable_token_calls == 2
    await store.close()


async def test_a_platform_error_is_a_channel_error(
        platform: tuple[WeChatPlatform, str], redis_url: str, redis_prefix: str) -> None:
    from gateway.channels import ChannelError

    _, url = platform
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    async with httpx.AsyncClient() as http:
        wrong = StableToken(http=http, store=store, base_url=url, appid=APPID,
                            secret="wrong", margin=300)
        with pytest.raises(ChannelError):
            await wrong.get()
    await store.close()
