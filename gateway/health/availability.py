"""What routing asks of health: may this instance be used now?

Every way into a system — ``/go``, the proxy, CAS and ticket logins — asks the same
question through :class:`Health` and picks with :func:`usable`: the instances that are up
and in rotation; if there are none, those half-open (one of them may take a trial
request); if there are none of those either, the system is unavailable and routing falls
back a level. :func:`unavailable_because` says why, in Chinese, for the citizen.
"""

from __future__ import annotations

from typing import Protocol

from gateway.config import SystemConfig
from gateway.health.state import Availability

__all__ = ["AlwaysUp", "Health", "unavailable_because", "usable"]


class Health(Protocol):
    """What this process knows of an instance (cheap: no I/O, called per request)."""

    def availability(self, system_id: str, instance: str) -> Availability: ...


class AlwaysUp:
    """No health information: every instance is up (`roam routes check`, tests)."""

    def availability(self, system_id: str, instance: str) -> Availability:
        return "up"


def usable(health: Health, system: SystemConfig) -> tuple[str, ...]:
    """The instances to route to: those up, else those half-open, else none."""
    seen = [(instance, health.availability(system.id, instance))
            for instance in system.instances]
    up = tuple(instance for instance, state in seen if state == "up")
    return up or tuple(instance for instance, state in seen if state == "trial")


def unavailable_because(health: Health, system: SystemConfig) -> str:
    """Why a system without usable instances cannot be used, for the citizen."""
    if all(health.availability(system.id, i) == "drained" for i in system.instances):
        return "正在维护"
    return "暂时无法访问"
