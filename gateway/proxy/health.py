"""Passive health: what the proxy learns about instances from its own requests."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.routing.resolve import AlwaysHealthy, Health

__all__ = ["PassiveHealth"]


class PassiveHealth:
    """Instances that failed to connect ``failures`` times in a row are unhealthy for
    ``cooldown`` seconds; one success clears the count. After the cooldown the instance is
    tried again, and a single further failure marks it down again.

    Satisfies :class:`gateway.routing.resolve.Health`; ``active`` (the active checker, when
    there is one) must also call an instance healthy.
    """

    def __init__(self, *, failures: int = 3, cooldown: float = 30.0,
                 active: Health | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        self.failures = failures
        self.cooldown = cooldown
        self.active: Health = active or AlwaysHealthy()
        self.clock = clock
        self._count: dict[tuple[str, str], int] = {}
        self._down_until: dict[tuple[str, str], float] = {}

    def healthy(self, system_id: str, instance: str) -> bool:
        until = self._down_until.get((system_id, instance))
        if until is not None and self.clock() < until:
            return False
        return self.active.healthy(system_id, instance)

    def record_failure(self, system_id: str, instance: str) -> None:
        key = (system_id, instance)
        count = self._count.get(key, 0) + 1
        self._count[key] = count
        if count >= self.failures:
            self._down_until[key] = self.clock() + self.cooldown

    def record_success(self, system_id: str, instance: str) -> None:
        key = (system_id, instance)
        self._count.pop(key, None)
        self._down_until.pop(key, None)
