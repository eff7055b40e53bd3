"""Health tests run on both stores: ``processes`` opens stores that share one picture, as
separate gateway processes would (one MemoryStore serves one process, so for memory they
are the same object; for Redis, separate clients)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from gateway.config import ServiceItem, SystemConfig, Systems
from gateway.store import MemoryStore, RedisStore, Store

ITEM = "X-1"
A, B = "http://127.0.0.1:9101", "http://127.0.0.1:9102"

Processes = Callable[[], Store]


@pytest.fixture
def systems() -> Systems:
    return Systems([
        SystemConfig(id="pair", name="长沙测试系统", region="430100", level="prefecture",
                     instances=(A, B), connector="signed-header", items=(ITEM,)),
    ], [ServiceItem(code=ITEM, name="测试事项")])


@pytest.fixture(params=["memory", "redis"])
async def processes(request: pytest.FixtureRequest) -> AsyncIterator[Processes]:
    opened: list[Store] = []
    if request.param == "memory":
        memory = MemoryStore()
        opened.append(memory)

        def one() -> Store:
            return memory
    else:
        url: str = request.getfixturevalue("redis_url")
        prefix: str = request.getfixturevalue("redis_prefix")

        def one() -> Store:
            opened.append(RedisStore.from_url(url, prefix=prefix))
            return opened[-1]
    yield one
    for store in opened:
        await store.close()
