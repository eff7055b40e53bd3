"""The binding records on real Redis: resolve, unionid, listing and removal."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.binding.bindings import Bindings
from gateway.binding.identity import ChannelIdentity
from gateway.store.redis import RedisStore

WECHAT = ChannelIdentity("wechat", "wx-a", "o-1", "u-1")
WECHAT_OTHER_APP = ChannelIdentity("wechat", "wx-b", "o-9", "u-1")
ALIPAY = ChannelIdentity("alipay", "2021", "2088-1")


@pytest.fixture
async def bindings(redis_url: str, redis_prefix: str) -> AsyncIterator[Bindings]:
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    try:
        yield Bindings(store, ttl=3600, citizen_of=lambda _: None)
    finally:
        await store.close()


async def test_unbound_is_the_channels_own_subject_at_l1(bindings: Bindings) -> None:
    assert await bindings.resolve(ALIPAY) == (ALIPAY.subject, "L1")
    assert ALIPAY.subject.startswith("ch-")
    assert "2088-1" not in ALIPAY.subject
    assert await bindings.identity_of(ALIPAY.subject) == ALIPAY


async def test_unionid_gives_every_app_the_same_subject(bindings: Bindings) -> None:
    assert WECHAT.subject == WECHAT_OTHER_APP.subject
    await bindings.bind(WECHAT, "c-0001", "L2")
    assert await bindings.resolve(WECHAT_OTHER_APP) == ("c-0001", "L2")


async def test_rebinding_at_l2_keeps_l3(bindings: Bindings) -> None:
    await bindings.bind(ALIPAY, "c-0001", "L3")
    await bindings.bind(ALIPAY, "c-0001", "L2")
    assert await bindings.resolve(ALIPAY) == ("c-0001", "L3")


async def test_binding_to_another_citizen_moves_it(bindings: Bindings) -> None:
    await bindings.bind(ALIPAY, "c-0001", "L3")
    await bindings.bind(ALIPAY, "c-0002", "L2")
    assert await bindings.resolve(ALIPAY) == ("c-0002", "L2")
    assert await bindings.of_subject("c-0001") == []


async def test_a_citizen_lists_and_removes_only_their_bindings(bindings: Bindings) -> None:
    await bindings.bind(WECHAT, "c-0001", "L2")
    await bindings.bind(ALIPAY, "c-0001", "L2")
    listed = await bindings.of_subject("c-0001")
    assert {b.identity for b in listed} == {WECHAT, ALIPAY}
    assert await bindings.remove("c-0002", WECHAT.key) is None  # not theirs
    assert await bindings.resolve(WECHAT) == ("c-0001", "L2")
    removed = await bindings.remove("c-0001", WECHAT.key)
    assert removed is not None
    assert removed.identity == WECHAT
    assert await bindings.resolve(WECHAT) == (WECHAT.subject, "L1")
    assert await bindings.resolve(WECHAT_OTHER_APP) == (WECHAT.subject, "L1")  # union too
    assert [b.identity for b in await bindings.of_subject("c-0001")] == [ALIPAY]


def test_a_channel_identity_needs_a_known_channel_and_ids() -> None:
    with pytest.raises(ValueError, match="channel"):
        ChannelIdentity("qq", "a", "o")
    with pytest.raises(ValueError, match="openid"):
        ChannelIdentity("wechat", "a", "")
