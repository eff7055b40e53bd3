"""What health reports, and to whom: transitions and probe results go to observers.

:class:`LogObserver` is always one of them: a transition is a log line on
``roam.health`` (a warning when an instance leaves rotation) and an audit event on
``roam.audit``; a failed probe is a log line. Metrics are another (:class:`MetricsObserver`):
an observer is called in the process that made the transition or ran the probe, and
:meth:`HealthObserver.pictured` hands every process the whole shared picture after each
read, so gauges agree in every process.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.health.state import InstanceState, Transition
from gateway.metrics.recorder import Metrics

__all__ = ["CheckResult", "HealthObserver", "LogObserver", "MetricsObserver"]

log = logging.getLogger("roam.health")
audit = logging.getLogger("roam.audit")


@dataclass(frozen=True)
class CheckResult:
    """One active probe of an instance, with the run it extends."""

    system: str
    instance: str
    at: float  # wall time it started
    ok: bool
    status: int | None  # the answer's status, None if there was none
    error: str  # what failed ("timeout", "connect error", "status 503"); "" when ok
    duration: float  # seconds
    node: str  # the gateway process that probed
    successes: int = 0  # ok probes in a row, this one included
    failures: int = 0  # failed probes in a row, this one included

    def payload(self) -> dict[str, Any]:
        return {"system": self.system, "instance": self.instance, "at": self.at,
                "ok": self.ok, "status": self.status, "error": self.error,
                "duration": self.duration, "node": self.node, "successes": self.successes,
                "failures": self.failures}

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> CheckResult:
        status = raw.get("status")
        return cls(str(raw.get("system", "")), str(raw.get("instance", "")),
                   float(raw.get("at", 0)), raw.get("ok") is True,
                   status if isinstance(status, int) else None, str(raw.get("error", "")),
                   float(raw.get("duration", 0)), str(raw.get("node", "")),
                   int(raw.get("successes", 0)), int(raw.get("failures", 0)))


class HealthObserver(Protocol):
    """Told what happened; must not block or raise (it runs on the event loop)."""

    def transitioned(self, state: InstanceState, change: Transition) -> None:
        """``state`` is the instance after ``change``, which this process wrote."""

    def checked(self, result: CheckResult) -> None:
        """This process probed an instance."""

    def pictured(self, states: Mapping[tuple[str, str], InstanceState]) -> None:
        """This process read the shared picture: every instance by (system, instance)."""


class LogObserver:
    """Transitions to the log and the audit trail; failed probes to the log."""

    def transitioned(self, state: InstanceState, change: Transition) -> None:
        fields = {"system": state.system, "instance": state.instance,
                  "previous": change.previous, "state": change.state,
                  "reason": change.reason, "by": change.by}
        leaving = change.state in ("down", "drained")
        (log.warning if leaving else log.info)("instance health changed", extra=fields)
        # an audit event (gateway/audit reads roam.audit records): the change happened
        audit.info("instance health changed", extra={**fields, "action": "health.change",
                                                     "outcome": "success"})

    def checked(self, result: CheckResult) -> None:
        if not result.ok:
            log.info("health check failed", extra={
                "system": result.system, "instance": result.instance,
                "error": result.error, "failures": result.failures})

    def pictured(self, states: Mapping[tuple[str, str], InstanceState]) -> None:
        return None


_CIRCUITS = {"up": "closed", "down": "open", "half_open": "half_open"}


class MetricsObserver:
    """Instance state gauges (healthy: it takes traffic — up, or half-open for its trial,
    and in rotation; the circuit) and probe results with their durations, to the
    gateway's metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def transitioned(self, state: InstanceState, change: Transition) -> None:
        self._state(state)

    def checked(self, result: CheckResult) -> None:
        outcome = "success" if result.ok else "timeout" if result.error == "timeout" \
            else "failure"
        self.metrics.health_check(result.system, result.instance, outcome, result.duration)

    def pictured(self, states: Mapping[tuple[str, str], InstanceState]) -> None:
        if self.metrics.enabled:
            for state in states.values():
                self._state(state)

    def _state(self, state: InstanceState) -> None:
        self.metrics.instance_state(state.system, state.instance,
                                    state.availability in ("up", "trial"),
                                    _CIRCUITS[state.state])
