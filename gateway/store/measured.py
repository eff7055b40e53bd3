"""A store that times every call and counts its failures, for the operators' metrics.

It wraps any :class:`~gateway.store.base.Store` and reports to a :class:`StoreMeter`
(``gateway.metrics.recorder`` is one): the wiring puts it around the store only when metrics
are on, so a gateway with metrics off pays nothing here. The meter hands out one
callable per operation up front, so a call costs two clock reads and one observation,
with no label look-up. Only :class:`~gateway.errors.StoreError` counts as a failure
(the store could not answer); a caller's bad argument is a bug, not an outage.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Protocol, TypeAlias, TypeVar

from gateway.errors import StoreError
from gateway.store.base import Advanced, Counted, Store, Versioned

__all__ = ["OPERATIONS", "MeasuredStore", "StoreMeter"]

T = TypeVar("T")
Pending: TypeAlias = Coroutine[Any, Any, T]

OPERATIONS = ("upsert", "find", "find_text", "consume", "find_versioned", "advance",
              "replace", "swap", "incr", "destroy", "find_by_grant", "revoke_by_grant",
              "forget")
"""The store protocol's calls, as the ``operation`` label names them."""


class StoreMeter(Protocol):
    def store_timer(self, operation: str) -> Callable[[float], None]:
        """Where the seconds one ``operation`` call took go."""

    def store_failure(self, operation: str) -> Callable[[], None]:
        """What to call when an ``operation`` call failed with a StoreError."""


class MeasuredStore:
    """``inner``, with each call's duration and failures reported to ``meter``."""

    # Each call is a plain method handing back :meth:`_run`'s coroutine: one coroutine a
    # call, not two (a silent hop makes seven).

    def __init__(self, inner: Store, meter: StoreMeter) -> None:
        self.inner = inner
        self._timers = {op: meter.store_timer(op) for op in OPERATIONS}
        self._failures = {op: meter.store_failure(op) for op in OPERATIONS}

    async def _run(self, operation: str, pending: Awaitable[T]) -> T:
        start = time.perf_counter()
        try:
            return await pending
        except StoreError:
            self._failures[operation]()
            raise
        finally:
            self._timers[operation](time.perf_counter() - start)

    def upsert(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int, *,
               version: str = "") -> Pending[None]:
        return self._run("upsert", self.inner.upsert(kind, id, payload, ttl, version=version))

    def find(self, kind: str, id: str) -> Pending[dict[str, Any] | None]:
        return self._run("find", self.inner.find(kind, id))

    def find_text(self, kind: str, id: str) -> Pending[str | bytes | None]:
        return self._run("find_text", self.inner.find_text(kind, id))

    def consume(self, kind: str, id: str) -> Pending[tuple[dict[str, Any], bool] | None]:
        return self._run("consume", self.inner.consume(kind, id))

    def find_versioned(self, kind: str, id: str) -> Pending[Versioned | None]:
        return self._run("find_versioned", self.inner.find_versioned(kind, id))

    def advance(self, kind: str, id: str, expected: str, new: str, *,
                memo: str = "", reuse_for: float = 0) -> Pending[Advanced | None]:
        return self._run("advance", self.inner.advance(kind, id, expected, new,
                                                       memo=memo, reuse_for=reuse_for))

    def replace(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int, *,
                version: str = "") -> Pending[bool]:
        return self._run("replace",
                         self.inner.replace(kind, id, payload, ttl, version=version))

    def swap(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int, *,
             expected: str | None, version: str) -> Pending[bool]:
        return self._run("swap", self.inner.swap(kind, id, payload, ttl,
                                                 expected=expected, version=version))

    def incr(self, kind: str, id: str, ttl: int, *, by: int = 1) -> Pending[Counted]:
        return self._run("incr", self.inner.incr(kind, id, ttl, by=by))

    def destroy(self, kind: str, id: str) -> Pending[None]:
        return self._run("destroy", self.inner.destroy(kind, id))

    def find_by_grant(self, grant_id: str) -> Pending[list[tuple[str, str, dict[str, Any]]]]:
        return self._run("find_by_grant", self.inner.find_by_grant(grant_id))

    def revoke_by_grant(self, grant_id: str) -> Pending[int]:
        return self._run("revoke_by_grant", self.inner.revoke_by_grant(grant_id))

    def forget(self, grant_id: str, kind: str, id: str) -> Pending[None]:
        return self._run("forget", self.inner.forget(grant_id, kind, id))

    async def close(self) -> None:
        await self.inner.close()
