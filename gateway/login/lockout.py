"""Login failure counting and lockout (等保 2.0 登录失败处理), kept in the store when given."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.errors import LockedOut

__all__ = ["FailureStore", "Failures", "LocalFailures", "locked_out"]


class FailureStore(Protocol):
    """The part of ``gateway.store.Store`` the failure counter needs."""

    async def upsert(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int) -> None: ...

    async def find(self, kind: str, id: str) -> dict[str, Any] | None: ...

    async def destroy(self, kind: str, id: str) -> None: ...


class LocalFailures:
    """In-process failure records, expiring on the injected clock (one process only)."""

    _PRUNE_AT = 10_000

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._records: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    async def upsert(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int) -> None:
        now = self._clock()
        if len(self._records) >= self._PRUNE_AT:  # sprayed usernames must not pile up
            self._records = {k: r for k, r in self._records.items() if r[0] > now}
        self._records[(kind, id)] = (now + ttl, dict(payload))

    async def find(self, kind: str, id: str) -> dict[str, Any] | None:
        record = self._records.get((kind, id))
        if record is None or record[0] <= self._clock():
            return None
        return dict(record[1])

    async def destroy(self, kind: str, id: str) -> None:
        self._records.pop((kind, id), None)


@dataclass(frozen=True)
class Failures:
    count: int = 0
    first: float = 0.0  # when the counting window opened
    locked_until: float = 0.0

    @classmethod
    def current(cls, payload: Mapping[str, Any] | None, now: float, window: int) -> Failures:
        """The record as of ``now``; an elapsed window or lock counts as no record."""
        if payload is None:
            return cls()
        try:
            state = cls(
                int(payload["count"]), float(payload["first"]), float(payload["locked_until"])
            )
        except (KeyError, TypeError, ValueError):
            return cls()
        if state.locked_until:
            return state if now < state.locked_until else cls()
        return state if now < state.first + window else cls()

    def to_payload(self) -> dict[str, Any]:
        return {"count": self.count, "first": self.first, "locked_until": self.locked_until}


def locked_out(until: float, now: float) -> LockedOut:
    seconds = max(1, math.ceil(until - now))
    minutes = max(1, math.ceil(seconds / 60))
    return LockedOut(f"登录失败次数过多，账户已临时锁定，请{minutes}分钟后再试", seconds)


# --- the source ----------------------------------------------------------------------
