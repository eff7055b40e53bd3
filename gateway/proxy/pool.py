"""Connections per origin for the proxy's upstream client: kept alive, and capped.

An origin (scheme, host, port) never has more than ``max_open`` connections open, busy
and idle together (``[proxy] max_connections_per_instance``), as nginx's ``max_conns``
does: a legacy system that serves a few hundred connections must not be handed thousands
because the gateway is busy. A request that finds every connection busy waits for one to
come back or to close, at most ``wait`` seconds, then fails with
:class:`~gateway.proxy.upstream.UpstreamBusy` (the proxy answers ``503`` with
``Retry-After``). Every give-back and every close wakes one waiter, which looks again.

A connection counts from the moment it is asked for until it has closed
(:meth:`Pool.lost`, from the connection's ``connection_lost``), so the count is never
below what the origin sees. The hot path (an idle connection there, one given back) is a
list pop and an append.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

from gateway.proxy.upstream import UpstreamBusy

__all__ = ["Pool", "Pooled"]


class Pooled(Protocol):
    """What the pool needs of a connection."""

    @property
    def closed(self) -> bool:
        """Whether it has closed (its slot is free again once :meth:`Pool.lost` ran)."""

    def close(self) -> None:
        """Close it; :meth:`Pool.lost` must follow once it has."""


C = TypeVar("C", bound=Pooled)
Key = Hashable


class Pool(Generic[C]):
    def __init__(self, *, max_open: int, max_idle: int) -> None:
        self.max_open = max_open
        self.max_idle = max_idle
        self._idle: dict[Key, list[C]] = {}
        self._open: dict[Key, int] = {}
        self._waiters: dict[Key, deque[asyncio.Future[None]]] = {}

    def open_count(self, key: Key) -> int:
        return self._open.get(key, 0)

    def take(self, key: Key) -> C | None:
        """An idle connection to ``key``, or None."""
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    async def acquire(self, key: Key, connect: Callable[[], Awaitable[C]], *, wait: float,
                      reuse: bool = True) -> C:
        """An idle connection (when ``reuse``), else a new one from ``connect`` while the
        origin has a free slot, else the first that comes back or frees one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            if reuse and (connection := self.take(key)) is not None:
                return connection
            if self._open.get(key, 0) < self.max_open:
                self._open[key] = self._open.get(key, 0) + 1
                try:
                    return await connect()
                except BaseException:
                    self.lost(key)  # never opened: its slot is free again
                    raise
            if not reuse and (idle := self.take(key)) is not None:
                idle.close()  # a new connection is wanted: make room; its close wakes us
            await self._wait(key, deadline - loop.time())

    async def _wait(self, key: Key, wait: float) -> None:
        if wait <= 0:
            raise UpstreamBusy(f"all {self.max_open} connections stayed busy")
        waiter = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(key, deque())
        waiters.append(waiter)
        timer = asyncio.get_running_loop().call_later(wait, _expire, waiter)
        try:
            await waiter
        except TimeoutError:
            raise UpstreamBusy(f"all {self.max_open} connections stayed busy") from None
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._wake(key)  # woken, then cancelled: pass the turn on
            raise
        finally:
            timer.cancel()
            if not waiter.done():
                waiter.cancel()
            if waiter in waiters:
                waiters.remove(waiter)

    def give_back(self, key: Key, connection: C) -> None:
        """Keep ``connection`` idle for the next request (or close it past ``max_idle``)."""
        idle = self._idle.setdefault(key, [])
        if connection.closed:
            return
        if len(idle) < self.max_idle:
            idle.append(connection)
            if self._waiters.get(key):
                self._wake(key)
        else:
            connection.close()

    def lost(self, key: Key) -> None:
        """A connection to ``key`` has closed (or never opened): its slot is free."""
        self._open[key] = max(0, self._open.get(key, 0) - 1)
        if self._waiters.get(key):
            self._wake(key)

    def _wake(self, key: Key) -> None:
        waiters = self._waiters.get(key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close_idle(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
