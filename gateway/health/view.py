"""This process's copy of the shared picture: what routing reads on every request.

Reading the store per proxied request would cost a round trip the proxy cannot afford,
so each process keeps a local copy, read again every ``[health] refresh`` seconds (one
pipelined round trip on Redis) and updated at once by the changes this process makes.
Another process's change is seen here within one refresh. Until the first read, and
for instances never recorded, everything is up. A failed read keeps the last picture.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import anyio

from gateway.errors import StoreError
from gateway.health.shared import SharedHealth
from gateway.health.state import Availability, InstanceState, instance_id
from gateway.store.base import Kind

__all__ = ["HealthView"]

log = logging.getLogger("roam.health")


class HealthView:
    """Satisfies :class:`gateway.health.availability.Health`."""

    def __init__(self, shared: SharedHealth, *, refresh: float = 1.0,
                 passive: Sequence[tuple[str, str]] = (),
                 clock: Callable[[], float] | None = None) -> None:
        self.shared = shared
        self.refresh = refresh
        self.passive = list(passive)  # instances traffic judges: their failure counts
        self.states: dict[tuple[str, str], InstanceState] = {}
        self._availability: dict[tuple[str, str], Availability] = {}
        self.failing: set[tuple[str, str]] = set()  # a failure count is running (passive)
        self.read_at = 0.0  # wall time of the last good read; 0 before the first
        self.clock = clock or shared.clock
        shared.listeners.append(self.learn)

    def availability(self, system_id: str, instance: str) -> Availability:
        return self._availability.get((system_id, instance), "up")

    def learn(self, state: InstanceState) -> None:
        """A state this process just wrote (or read): routing uses it from now on."""
        key = (state.system, state.instance)
        self.states[key] = state
        self._availability[key] = state.availability

    async def read(self) -> None:
        """The shared picture, now; ``StoreError`` if the store did not answer."""
        store = self.shared.store
        states, counted = await asyncio.gather(self.shared.read_all(), asyncio.gather(*(
            store.incr(Kind.HEALTH_FAILURES, instance_id(s, i), 1, by=0)
            for s, i in self.passive)))
        self.states = states
        self._availability = {key: state.availability for key, state in states.items()}
        self.failing = {key for key, count in zip(self.passive, counted, strict=True)
                        if count.value > 0}
        self.read_at = self.clock()
        for observer in self.shared.observers:
            observer.pictured(states)

    async def run(self) -> None:
        """Read every ``refresh`` seconds, for as long as the app runs."""
        failing = False
        while True:
            try:
                await self.read()
                if failing:
                    log.info("health picture read again")
                failing = False
            except StoreError as exc:
                if not failing:  # once per outage, not once a second
                    log.warning("health picture not read: the store failed",
                                extra={"cause": str(exc)})
                failing = True
            await anyio.sleep(self.refresh)
