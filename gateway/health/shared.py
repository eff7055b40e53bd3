"""The store's picture of every instance, and the one way to change it.

A change reads the instance's record and version, asks a pure function what the next
state is (None: nothing to do, e.g. another process already made the change), and
writes it with the store's ``swap`` over the version it read; a loser reads again and
asks again. Each transition is thus made once across all processes, and reported once
(logs, audit, observers) by the process that made it. The operator's API — take an
instance out of rotation, put it back, list everything — is here too, for the CLI and
the ops pages alike.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from gateway.config import SystemConfig, Systems
from gateway.health.events import CheckResult, HealthObserver, LogObserver
from gateway.health.state import InstanceState, instance_id
from gateway.store.base import Kind, Store

__all__ = ["CHECK_TTL", "STATE_TTL", "Decide", "SharedHealth", "UnknownInstance"]

log = logging.getLogger("roam.health")

STATE_TTL = 30 * 86400
"""Seconds an instance's record lives unwritten; its prober rewrites it daily."""
CHECK_TTL = 7 * 86400
"""Seconds the last probe result is kept (a system whose checks stopped still shows it)."""
_TRIES = 8

Decide = Callable[[InstanceState], InstanceState | None]
"""Given an instance's current state, its next one (None: nothing to change)."""


class UnknownInstance(LookupError):
    """No such system, or no such instance of it, in the systems file."""


class SharedHealth:
    def __init__(self, store: Store, systems: Systems, *,
                 observers: Sequence[HealthObserver] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.systems = systems
        self.observers: list[HealthObserver] = [LogObserver(), *observers]
        self.clock = clock
        self.listeners: list[Callable[[InstanceState], None]] = []  # a local view learning

    def instances(self) -> list[tuple[SystemConfig, str]]:
        """Every (system, instance) of the systems file, in file order."""
        return [(system, instance) for system in self.systems for instance in system.instances]

    def find(self, system_id: str, instance: str) -> tuple[SystemConfig, str]:
        """The system and its instance: by URL, or by position (``1`` is the first)."""
        system = self.systems.get(system_id)
        if system is None:
            raise UnknownInstance(f"no system {system_id!r} in the systems file")
        if instance in system.instances:
            return system, instance
        if instance.isdigit() and 1 <= int(instance) <= len(system.instances):
            return system, system.instances[int(instance) - 1]
        raise UnknownInstance(f"system {system_id!r} has no instance {instance!r} "
                              f"(its instances: {', '.join(system.instances)})")

    async def read(self, system_id: str, instance: str) -> tuple[InstanceState, str | None]:
        """The instance's state and the record's version (None: never recorded)."""
        found = await self.store.find_versioned(Kind.HEALTH_STATE,
                                                instance_id(system_id, instance))
        if found is None:
            return InstanceState(system_id, instance), None
        return InstanceState.of(system_id, instance, found.payload), found.version

    async def read_all(self, pairs: Iterable[tuple[str, str]] | None = None
                       ) -> dict[tuple[str, str], InstanceState]:
        """Every instance's state (one round trip on Redis: the reads are pipelined)."""
        keys = list(pairs) if pairs is not None else [
            (system.id, instance) for system, instance in self.instances()]
        read = await asyncio.gather(*(self.read(s, i) for s, i in keys))
        return {key: state for key, (state, _) in zip(keys, read, strict=True)}

    async def change(self, system_id: str, instance: str, decide: Decide
                     ) -> InstanceState | None:
        """Apply ``decide`` to the current state, atomically; the new state, or None if
        ``decide`` found nothing to do (or lost every race: the others' changes stand).
        Reported when it added a transition."""
        for _ in range(_TRIES):
            current, version = await self.read(system_id, instance)
            wanted = decide(current)
            if wanted is None:
                return None
            now = self.clock()
            written = await self.store.swap(
                Kind.HEALTH_STATE, instance_id(system_id, instance), wanted.payload(now),
                STATE_TTL, expected=version, version=str(int(version or 0) + 1))
            if written:
                wanted = replace(wanted, written=now)
                if wanted.state != current.state:  # a trial claimed before is over
                    await self.store.destroy(Kind.HEALTH_TRIAL, instance_id(system_id, instance))
                self._report(current, wanted)
                return wanted
        log.warning("instance health not changed: too many concurrent changes",
                    extra={"system": system_id, "instance": instance})
        return None

    def _report(self, before: InstanceState, after: InstanceState) -> None:
        for listen in self.listeners:
            listen(after)
        if len(after.transitions) and after.transitions[:1] != before.transitions[:1]:
            for observer in self.observers:
                observer.transitioned(after, after.transitions[0])

    # -- the operator's API ---------------------------------------------------------------

    async def drain(self, system_id: str, instance: str, *, by: str,
                    reason: str = "") -> InstanceState:
        """Take an instance out of rotation (probes go on); ``UnknownInstance`` if the
        systems file has no such instance. Draining a drained instance changes nothing."""
        return await self._set_drained(system_id, instance, True, by=by,
                                       reason=reason or "taken out of rotation")

    async def undrain(self, system_id: str, instance: str, *, by: str,
                      reason: str = "") -> InstanceState:
        """Put an instance back into rotation (in whatever health it is)."""
        return await self._set_drained(system_id, instance, False, by=by,
                                       reason=reason or "put back into rotation")

    async def _set_drained(self, system_id: str, instance: str, drained: bool, *, by: str,
                           reason: str) -> InstanceState:
        system, instance = self.find(system_id, instance)

        def decide(state: InstanceState) -> InstanceState | None:
            if state.drained == drained:
                return None
            return state.drain(drained, reason, now=self.clock(), by=by)

        changed = await self.change(system.id, instance, decide)
        return changed or (await self.read(system.id, instance))[0]

    async def last_check(self, system_id: str, instance: str) -> CheckResult | None:
        raw = await self.store.find(Kind.HEALTH_CHECK, instance_id(system_id, instance))
        return None if raw is None else CheckResult.of(raw)

    async def record_check(self, result: CheckResult) -> None:
        await self.store.upsert(Kind.HEALTH_CHECK, instance_id(result.system, result.instance),
                                result.payload(), CHECK_TTL)
        for observer in self.observers:
            observer.checked(result)

    async def status(self) -> list[tuple[InstanceState, CheckResult | None]]:
        """Every instance with its last probe, in systems-file order."""
        pairs = [(system.id, instance) for system, instance in self.instances()]
        states = await self.read_all(pairs)
        checks = await asyncio.gather(*(self.last_check(s, i) for s, i in pairs))
        return [(states[pair], check) for pair, check in zip(pairs, checks, strict=True)]
