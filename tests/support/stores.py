"""Both stores, for suites that must hold on each: ``any_store`` is a MemoryStore and a
real Redis (a prefix of the test's own) in turn, both judging time by ``clock``, a fake
clock the test moves by hand (Redis's own TTLs still run on real time)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.store import MemoryStore, RedisStore, Store

__all__ = ["FakeClock", "any_store", "clock"]


class FakeClock:
    """Memory-store time that tests move by hand instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
async def any_store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Store]:
    opened: Store
    if request.param == "memory":
        opened = MemoryStore(clock=clock)
    else:
        # Asked for here, not in the signature, so memory runs never need a Redis.
        url: str = request.getfixturevalue("redis_url")
        prefix: str = request.getfixturevalue("redis_prefix")
        # the fake clock judges reuse windows (Redis's own TTLs run on real time)
        opened = RedisStore.from_url(url, prefix=prefix, clock=clock)
    yield opened
    await opened.close()
