"""Passive outlier detection: what the proxy's own requests say about an instance.

A failed request (a 5xx answer, a timeout, a failed connection, a broken answer) counts
in the store (``incr``: every process adds to one count); ``passive_failures`` in a row
eject the instance for ``passive_cooldown`` seconds. Then it is half-open: the first
request to claim the trial (``incr`` again, so one at a time across processes) decides —
a success puts it back, a failure ejects it again. A success clears the count, with a
store call only when there is a count to clear: a healthy instance costs the proxy no
store round trip at all. What traffic says is a hint: when the store fails, it is
dropped (logged once per outage), never the request's failure.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping

from gateway.config import HealthRules, SystemConfig
from gateway.errors import StoreError
from gateway.health.shared import SharedHealth
from gateway.health.state import Availability, InstanceState, instance_id
from gateway.health.view import HealthView
from gateway.store.base import Kind

__all__ = ["PASSIVE_WINDOW", "Outliers"]

log = logging.getLogger("roam.health")

PASSIVE_WINDOW = 300
"""Seconds a run of failures is counted from its first (a counter needs a window)."""


class Outliers:
    """The proxy's side of health; satisfies :class:`gateway.health.availability.Health`."""

    def __init__(self, shared: SharedHealth, view: HealthView,
                 rules: Mapping[str, HealthRules], *, node: str = "") -> None:
        self.shared = shared
        self.view = view
        self.rules = rules  # per system id
        self.node = node
        self._counted: set[tuple[str, str]] = set()  # this process added to a count
        self._store_failing = False

    def availability(self, system_id: str, instance: str) -> Availability:
        return self.view.availability(system_id, instance)

    async def claim_trial(self, system: SystemConfig, instance: str) -> bool:
        """Whether this request is the one trial of a half-open instance (no other
        process or request has one running; a trial that never ends frees the claim
        after the system's timeout)."""
        with self._hint():
            claimed = await self.shared.store.incr(Kind.HEALTH_TRIAL,
                                                   instance_id(system.id, instance),
                                                   math.ceil(system.timeout) + 1)
            return claimed.value == 1
        return False

    @contextlib.contextmanager
    def _hint(self) -> Iterator[None]:
        try:
            yield
            self._store_failing = False
        except StoreError as exc:
            if not self._store_failing:
                log.warning("passive health dropped: the store failed",
                            extra={"cause": str(exc)})
            self._store_failing = True

    async def succeeded(self, system_id: str, instance: str) -> None:
        """A request to the instance got an answer below 500."""
        key = (system_id, instance)
        if self.view.availability(system_id, instance) != "trial" and (
                key not in self._counted and key not in self.view.failing):
            return  # the usual case: nothing to tell the store
        with self._hint():
            await self._succeeded(system_id, instance, key)

    async def _succeeded(self, system_id: str, instance: str, key: tuple[str, str]) -> None:
        if self.view.availability(system_id, instance) == "trial":
            await self.shared.change(system_id, instance, self._restored)
        if key in self._counted or key in self.view.failing:
            self._counted.discard(key)
            self.view.failing.discard(key)
            await self.shared.store.destroy(Kind.HEALTH_FAILURES,
                                            instance_id(system_id, instance))

    async def failed(self, system_id: str, instance: str, what: str) -> None:
        """A request to the instance failed: ``what`` says how (for the logs)."""
        with self._hint():
            await self._failed(system_id, instance, what)

    async def _failed(self, system_id: str, instance: str, what: str) -> None:
        rules = self.rules[system_id]
        key = (system_id, instance)
        id = instance_id(system_id, instance)
        now = self.shared.clock()
        until = now + rules.passive_cooldown
        if self.view.availability(system_id, instance) == "trial":
            def reject(state: InstanceState) -> InstanceState | None:
                if state.state != "half_open":
                    return None
                return state.moved("down", f"trial request failed: {what}", now=now,
                                   cause="passive", until=until, by=self.node)

            await self.shared.change(system_id, instance, reject)
            return
        count = (await self.shared.store.incr(Kind.HEALTH_FAILURES, id, PASSIVE_WINDOW)).value
        self._counted.add(key)
        if count < rules.passive_failures:
            return

        def eject(state: InstanceState) -> InstanceState | None:
            if state.state != "up":
                return None
            return state.moved("down", f"{count} failed requests in a row, the last: {what}",
                               now=now, cause="passive", until=until, by=self.node)

        await self.shared.change(system_id, instance, eject)
        self._counted.discard(key)
        await self.shared.store.destroy(Kind.HEALTH_FAILURES, id)

    def _restored(self, state: InstanceState) -> InstanceState | None:
        if state.state != "half_open":
            return None
        return state.moved("up", "trial request succeeded", now=self.shared.clock(),
                           by=self.node)
