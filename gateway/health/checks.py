"""Every instance's health in one gateway process, assembled.

``shared`` is the store's picture and the operator's API (drain, undrain, status);
``view`` this process's copy, which routing reads; ``outliers`` what the proxy's traffic
says; ``prober`` the active checks. :meth:`HealthChecks.run` is the background work (the
app's lifespan runs it): reading the picture every ``[health] refresh`` seconds, and
watching the instances.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Collection, Sequence

import anyio
import httpx

from gateway.config import HealthSection, Systems, rules_for
from gateway.health.events import HealthObserver
from gateway.health.leases import Leases
from gateway.health.outliers import Outliers
from gateway.health.probes import Prober, Target
from gateway.health.shared import SharedHealth
from gateway.health.state import Availability
from gateway.health.view import HealthView
from gateway.store.base import Store

__all__ = ["HealthChecks", "node_id"]


def node_id() -> str:
    """This process among the gateway's: host, pid and a random tag (pids repeat across
    containers and restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class HealthChecks:
    """Satisfies :class:`gateway.health.availability.Health` (through ``view``)."""

    def __init__(self, store: Store, systems: Systems, section: HealthSection, *,
                 http: httpx.AsyncClient | None, passive: Collection[str] = (),
                 observers: Sequence[HealthObserver] = (), node: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """``passive``: the systems the proxy serves (its traffic judges their instances);
        ``http``: the client probes go out with (None: this process probes nothing)."""
        self.node = node or node_id()
        self.rules = {system.id: rules_for(section, system.health) for system in systems}
        self.shared = SharedHealth(store, systems, observers=observers, clock=clock)
        self.view = HealthView(self.shared, refresh=section.refresh, passive=[
            (system.id, instance) for system in systems if system.id in passive
            for instance in system.instances])
        self.outliers = Outliers(self.shared, self.view, self.rules, node=self.node)
        watched = [Target(system, instance, self.rules[system.id])
                   for system in systems for instance in system.instances
                   if self.rules[system.id].active or system.id in passive]
        self.prober = None if http is None else Prober(
            self.shared, self.view, http, watched, leases=Leases(store, self.node, clock=clock),
            clock=clock)

    def availability(self, system_id: str, instance: str) -> Availability:
        return self.view.availability(system_id, instance)

    async def run(self) -> None:
        """The background work, until cancelled."""
        async with anyio.create_task_group() as group:
            group.start_soon(self.view.run)
            if self.prober is not None:
                group.start_soon(self.prober.run)
