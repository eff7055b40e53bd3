"""Stores: ``MemoryStore`` (embedded default, one process) and ``RedisStore`` (production)."""

from gateway.store.base import Kind, Store
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore

__all__ = ["Kind", "MemoryStore", "RedisStore", "Store", "open_store"]


def open_store(backend: str, *, redis_url: str | None, prefix: str, timeout: float = 1.0,
               connect_timeout: float = 1.0, circuit_open: float = 2.0) -> Store:
    """The store config asks for; the caller (the app's lifespan) owns and closes it."""
    if backend == "memory":
        return MemoryStore()
    if backend == "redis":
        if not redis_url:
            raise ValueError("the redis store needs a redis_url")
        return RedisStore.from_url(redis_url, prefix=prefix, timeout=timeout,
                                   connect_timeout=connect_timeout, circuit_open=circuit_open)
    raise ValueError(f"unknown store backend {backend!r} (expected 'memory' or 'redis')")
