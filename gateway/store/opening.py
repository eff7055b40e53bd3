"""The store ``[store]`` names: memory, or Redis — one node, a Cluster, or Sentinel's
master (``gateway.store.redis_clients``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from gateway.store.base import Store
from gateway.store.breaker import Breaker
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore
from gateway.store.redis_clients import cluster_client, sentinel_client

__all__ = ["open_store"]


def open_store(backend: str, *, redis_url: str | None, prefix: str, timeout: float = 1.0,
               connect_timeout: float = 1.0, circuit_open: float = 2.0,
               cluster_nodes: Sequence[str] = (), sentinels: Sequence[str] = (),
               sentinel_service: str = "", password: str = "",
               sentinel_password: str = "",
               clock: Callable[[], float] = time.time) -> Store:
    """The store config asks for: memory, or Redis — one node (``redis_url``), a Cluster
    (``cluster_nodes``) or Sentinel's master (``sentinels``, ``sentinel_service``). The
    caller (the app's lifespan) owns and closes it."""
    if backend == "memory":
        return MemoryStore()
    if backend != "redis":
        raise ValueError(f"unknown store backend {backend!r} (expected 'memory' or 'redis')")
    if cluster_nodes or sentinels:
        opened = (cluster_client(cluster_nodes, password=password, timeout=timeout,
                                 connect_timeout=connect_timeout) if cluster_nodes else
                  sentinel_client(sentinels, sentinel_service, password=password,
                                  sentinel_password=sentinel_password, timeout=timeout,
                                  connect_timeout=connect_timeout))
        return RedisStore(opened.client, prefix=prefix, breaker=Breaker(circuit_open),
                          secrets=opened.secrets, also_close=opened.also_close, clock=clock)
    if not redis_url:
        raise ValueError("the redis store needs a redis_url")
    return RedisStore.from_url(redis_url, prefix=prefix, timeout=timeout,
                               connect_timeout=connect_timeout, circuit_open=circuit_open,
                               clock=clock)
