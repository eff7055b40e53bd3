"""The embedded store: one process, no dependencies.

State lives in plain dicts. Every method body runs without an ``await``, so under asyncio
each call is atomic: nothing can interleave between ``consume``'s check and its set.
Payloads are kept as JSON text, which is both the deep copy that keeps callers from
mutating stored state and the same round trip ``RedisStore`` makes, so the two stores
hand back identical shapes (tuples become lists, keys become strings).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.store.base import (
    VERSION_HISTORY,
    Advanced,
    Counted,
    Versioned,
    check_delta,
    check_kind,
    check_reuse,
    check_ttl,
    check_version,
    dump_payload,
    grant_of,
)

__all__ = ["MemoryStore"]

_SWEEP_INTERVAL = 60.0
"""Seconds between full sweeps: bounds how long expired, never-read records linger."""


@dataclass(slots=True)
class _Record:
    text: str
    expires_at: float
    grant_id: str | None
    consumed: bool = False
    version: str = ""
    previous: tuple[str, ...] = ()
    reuse: tuple[str, float, str] | None = None  # (replaced version, until, memo)


@dataclass(slots=True)
class _Counter:
    value: int
    expires_at: float


class MemoryStore:
    """The default store for a single gateway process (tests, demo, small installs)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._records: dict[tuple[str, str], _Record] = {}
        self._grants: dict[str, set[tuple[str, str]]] = {}
        self._counters: dict[tuple[str, str], _Counter] = {}
        self._next_sweep = clock() + _SWEEP_INTERVAL

    def __len__(self) -> int:
        """Entries held, expired-but-not-yet-purged ones included (what memory pays for)."""
        return len(self._records) + len(self._counters)

    def snapshot(self) -> dict[tuple[str, str], tuple[str, bool, str]]:
        """Every live record's payload text, consumed flag and version, and every live
        counter's value (as ``count=<n>``): lets tests prove that a refused request changed
        nothing."""
        now = self._clock()
        held = {key: (r.text, r.consumed, r.version) for key, r in self._records.items()
                if r.expires_at > now}
        held.update({key: (f"count={c.value}", False, "") for key, c in self._counters.items()
                     if c.expires_at > now})
        return held

    async def upsert(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int, *,
                     version: str = "") -> None:
        self._write(_key(kind, id), payload, ttl, version, only_over_live=False)

    def _write(self, key: tuple[str, str], payload: Mapping[str, Any], ttl: int,
               version: str, *, only_over_live: bool) -> bool:
        check_ttl(ttl)
        check_version(version, empty_ok=True)
        text = dump_payload(payload)
        if only_over_live and self._live(key) is None:
            return False
        now = self._clock()
        if now >= self._next_sweep:
            self.sweep()
        self._drop(key)  # a replaced record may have belonged to another grant
        self._counters.pop(key, None)
        grant_id = grant_of(payload)
        self._records[key] = _Record(text, now + ttl, grant_id, version=version)
        if grant_id is not None:
            self._grants.setdefault(grant_id, set()).add(key)
        return True

    async def find(self, kind: str, id: str) -> dict[str, Any] | None:
        record = self._live(_key(kind, id))
        return None if record is None else _load(record.text)

    async def find_text(self, kind: str, id: str) -> str | None:
        record = self._live(_key(kind, id))
        return None if record is None else record.text

    async def consume(self, kind: str, id: str) -> tuple[dict[str, Any], bool] | None:
        record = self._live(_key(kind, id))
        if record is None:
            return None
        first_use = not record.consumed
        record.consumed = True
        return _load(record.text), first_use

    async def find_versioned(self, kind: str, id: str) -> Versioned | None:
        record = self._live(_key(kind, id))
        if record is None:
            return None
        return Versioned(_load(record.text), record.version, record.previous)

    async def advance(self, kind: str, id: str, expected: str, new: str, *,
                      memo: str = "", reuse_for: float = 0) -> Advanced | None:
        check_version(expected)
        check_version(new)
        check_reuse(memo, reuse_for)
        record = self._live(_key(kind, id))
        if record is None:
            return None
        now = self._clock()
        if record.version != expected:
            reuse = record.reuse
            if reuse is not None and reuse[0] == expected and now < reuse[1]:
                return Advanced(_load(record.text), "repeated", reuse[2])
            return Advanced(_load(record.text),
                            "retired" if expected in record.previous else "unknown")
        record.previous = (expected, *record.previous)[:VERSION_HISTORY]
        record.version = new
        record.reuse = (expected, now + reuse_for, memo) if reuse_for > 0 else None
        return Advanced(_load(record.text), "advanced")

    async def replace(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int, *,
                      version: str = "") -> bool:
        return self._write(_key(kind, id), payload, ttl, version, only_over_live=True)

    async def swap(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int, *,
                   expected: str | None, version: str) -> bool:
        # No await in here: the comparison and the write cannot be interleaved.
        key = _key(kind, id)
        check_ttl(ttl)
        check_version(version)
        if expected is not None:
            check_version(expected, empty_ok=True)
        dump_payload(payload)  # refused payloads are refused whatever the version
        record = self._live(key)
        if (record is not None) if expected is None else (
                record is None or record.version != expected):
            return False
        return self._write(key, payload, ttl, version, only_over_live=False)

    async def incr(self, kind: str, id: str, ttl: int, *, by: int = 1) -> Counted:
        # No await in here: under asyncio the read and the write cannot be interleaved.
        key = _key(kind, id)
        check_ttl(ttl)
        check_delta(by)
        now = self._clock()
        if now >= self._next_sweep:
            self.sweep()
        counter = self._counters.get(key)
        if counter is not None and counter.expires_at <= now:
            del self._counters[key]
            counter = None
        if counter is None:
            if by <= 0:
                return Counted(0, 0)
            counter = self._counters[key] = _Counter(0, now + ttl)
        counter.value += by
        return Counted(counter.value, math.ceil(counter.expires_at - now))

    async def destroy(self, kind: str, id: str) -> None:
        key = _key(kind, id)
        self._drop(key)
        self._counters.pop(key, None)

    async def find_by_grant(self, grant_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        found = []
        for key in list(self._grants.get(grant_id, ())):
            record = self._live(key)
            if record is not None:
                found.append((key[0], key[1], _load(record.text)))
        return found

    async def revoke_by_grant(self, grant_id: str) -> int:
        keys = self._grants.pop(grant_id, set())
        now = self._clock()
        removed = 0
        for key in keys:
            record = self._records.pop(key, None)
            if record is not None and record.expires_at > now:
                removed += 1
        return removed

    async def forget(self, grant_id: str, kind: str, id: str) -> None:
        members = self._grants.get(grant_id)
        if members is not None:
            members.discard(_key(kind, id))
            if not members:
                del self._grants[grant_id]

    async def close(self) -> None:
        self._records.clear()
        self._grants.clear()
        self._counters.clear()

    def sweep(self) -> int:
        """Purge every expired record; returns how many. Runs by itself once a minute."""
        now = self._clock()
        self._next_sweep = now + _SWEEP_INTERVAL
        expired = [key for key, record in self._records.items() if record.expires_at <= now]
        for key in expired:
            self._drop(key)
        counters = [key for key, c in self._counters.items() if c.expires_at <= now]
        for key in counters:
            del self._counters[key]
        return len(expired) + len(counters)

    def _live(self, key: tuple[str, str]) -> _Record | None:
        record = self._records.get(key)
        if record is not None and record.expires_at <= self._clock():
            self._drop(key)
            return None
        return record

    def _drop(self, key: tuple[str, str]) -> None:
        record = self._records.pop(key, None)
        if record is None or record.grant_id is None:
            return
        members = self._grants.get(record.grant_id)
        if members is not None:
            members.discard(key)
            if not members:
                del self._grants[record.grant_id]


def _key(kind: str, id: str) -> tuple[str, str]:
    return check_kind(kind), id


def _load(text: str) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(text)
    return payload
