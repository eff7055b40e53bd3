"""Stores: ``MemoryStore`` (embedded default, one process) and ``RedisStore`` (production)."""

from gateway.store.base import Kind, Store
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore

__all__ = ["Kind", "MemoryStore", "RedisStore", "Store", "open_store"]


def open_store(backend: str, *, redis_url: str | None, prefix: str) -> Store:
    """The store config asks for; the caller (the app's lifespan) owns and closes it."""
    if backend == "memory":
        return MemoryStore()
    if backend == "redis":
        if not redis_url:
            raise ValueError("the redis store needs a redis_url")
        return RedisStore.from_url(redis_url, prefix=prefix)
    raise ValueError(f"unknown store backend {backend!r} (expected 'memory' or 'redis')")
