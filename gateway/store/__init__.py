"""Stores: ``MemoryStore`` (embedded default, one process) and ``RedisStore`` (production)."""

from gateway.store.base import Kind, Store
from gateway.store.memory import MemoryStore
from gateway.store.opening import open_store
from gateway.store.redis import RedisStore

__all__ = ["Kind", "MemoryStore", "RedisStore", "Store", "open_store"]
