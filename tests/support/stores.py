"""Every store, for suites that must hold on each: ``any_store`` is a MemoryStore, a real
Redis, a real Redis Cluster (three masters, three replicas) and a master behind real
Sentinels in turn, each judging time by ``clock``, a fake clock the test moves by hand
(Redis's own TTLs still run on real time). ``topology`` opens more clients of the same
store (other gateway processes) and a raw client to look inside."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from uuid import uuid4

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from gateway.store import MemoryStore, RedisStore, Store, open_store
from tests.support.redis_cluster import RedisCluster as LocalCluster
from tests.support.redis_cluster import (
    RedisSentinels,
    started_cluster,
    started_sentinels,
)

__all__ = ["TOPOLOGIES", "FakeClock", "Topology", "any_store", "clock", "topology"]

TOPOLOGIES = ("memory", "redis", "cluster", "sentinel")


class FakeClock:
    """Memory-store time that tests move by hand instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Topology:
    name: str
    open: Callable[[], Store]  # another client of the same store (same prefix)
    raw: Callable[[], Redis | RedisCluster] | None  # None: the memory store
    prefix: str


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    with started_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinels() -> Iterator[RedisSentinels]:
    with started_sentinels() as sentinels:
        yield sentinels


@pytest.fixture(params=TOPOLOGIES)
def topology(request: pytest.FixtureRequest, clock: FakeClock) -> Topology:
    name: str = request.param
    if name == "memory":
        shared = MemoryStore(clock=clock)  # one process is all it serves
        return Topology(name, lambda: shared, None, "")
    if name == "redis":
        # Asked for here, not in the signature, so memory runs never need a Redis.
        url: str = request.getfixturevalue("redis_url")
        prefix: str = request.getfixturevalue("redis_prefix")
        return Topology(name, lambda: RedisStore.from_url(url, prefix=prefix, clock=clock),
                        lambda: Redis.from_url(url), prefix)
    prefix = f"roamtest:{uuid4().hex}:"  # a throwaway server: nothing to clean
    if name == "cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")

        def on_cluster() -> Store:
            return open_store("redis", redis_url=None, prefix=prefix, clock=clock,
                              cluster_nodes=cluster.seeds)

        return Topology(name, on_cluster, lambda: RedisCluster.from_url(cluster.seeds[0]),
                        prefix)
    sentinels: RedisSentinels = request.getfixturevalue("redis_sentinels")

    def behind_sentinel() -> Store:
        return open_store("redis", redis_url=None, prefix=prefix, clock=clock,
                          sentinels=sentinels.addresses, sentinel_service=sentinels.service)

    return Topology(name, behind_sentinel,
                    lambda: Redis(port=sentinels.master.port), prefix)


@pytest.fixture
async def any_store(topology: Topology) -> AsyncIterator[Store]:
    opened = topology.open()
    yield opened
    await opened.close()
