"""One instance's health as every gateway process shares it, and how it may change.

An instance is ``up`` (circuit closed), ``down`` (open: out of rotation) or ``half_open``
(one trial request at a time decides). Orthogonal to that, an operator may take it out of
rotation (``drained``) and put it back; its health is still checked meanwhile. The
changes (:meth:`InstanceState.moved`, :meth:`InstanceState.drain`) are pure: the store
writes them with ``swap`` (:mod:`gateway.health.shared`), so two processes that see the
same failure make one transition, not two.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = [
    "KEPT_TRANSITIONS",
    "Availability",
    "Cause",
    "Circuit",
    "InstanceState",
    "Transition",
    "instance_id",
]

KEPT_TRANSITIONS = 10
"""Transitions each instance keeps, newest first (``roam routes status`` shows them)."""

Circuit = Literal["up", "down", "half_open"]
Cause = Literal["", "active", "passive"]  # what took an instance down: probes or traffic
Availability = Literal["up", "trial", "down", "drained"]
"""What routing may do with an instance: use it, send it one trial request, or not."""


def instance_id(system_id: str, instance: str) -> str:
    """The store id of an instance: the system and a digest of the URL (no ``{`` or ``}``
    of a URL can reach a Redis key's hash tag)."""
    return f"{system_id}:{hashlib.sha256(instance.encode()).hexdigest()[:20]}"


@dataclass(frozen=True)
class Transition:
    """One change: ``previous`` → ``state`` (a circuit state, or ``drained``), when, why,
    and who made it (a process's node id, or the operator)."""

    at: float
    previous: str
    state: str
    reason: str
    by: str = ""

    def payload(self) -> dict[str, Any]:
        return {"at": self.at, "from": self.previous, "to": self.state, "reason": self.reason,
                "by": self.by}

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Transition:
        return cls(float(raw.get("at", 0)), str(raw.get("from", "")), str(raw.get("to", "")),
                   str(raw.get("reason", "")), str(raw.get("by", "")))


@dataclass(frozen=True)
class InstanceState:
    """What the store holds for an instance; absent means up and in rotation."""

    system: str
    instance: str
    state: Circuit = "up"
    cause: Cause = ""
    reason: str = ""  # why it is down or half-open, for operators
    since: float = 0.0  # wall time of the last change of ``state``
    until: float = 0.0  # down by traffic: when its half-open trial may start
    drained: bool = False  # taken out of rotation by an operator
    drained_by: str = ""
    transitions: tuple[Transition, ...] = field(default=())  # newest first
    written: float = 0.0  # when the record was last written (kept alive by its prober)

    @property
    def availability(self) -> Availability:
        if self.drained:
            return "drained"
        if self.state == "up":
            return "up"
        return "trial" if self.state == "half_open" else "down"

    @property
    def circuit(self) -> str:
        """The circuit breaker's name for ``state``."""
        return {"up": "closed", "down": "open", "half_open": "half-open"}[self.state]

    def moved(self, state: Circuit, reason: str, *, now: float, cause: Cause = "",
              until: float = 0.0, by: str = "") -> InstanceState:
        """This instance in ``state``, the change remembered."""
        return replace(self._noted(Transition(now, self.state, state, reason, by)),
                       state=state, cause=cause if state != "up" else "",
                       reason=reason if state != "up" else "", since=now, until=until)

    def drain(self, drained: bool, reason: str, *, now: float, by: str) -> InstanceState:
        """Out of rotation (``drained``) or back in, by an operator."""
        change = (Transition(now, self.state, "drained", reason, by) if drained
                  else Transition(now, "drained", self.state, reason, by))
        return replace(self._noted(change), drained=drained, drained_by=by if drained else "")

    def _noted(self, change: Transition) -> InstanceState:
        return replace(self, transitions=(change, *self.transitions)[:KEPT_TRANSITIONS])

    def payload(self, now: float) -> dict[str, Any]:
        return {"system": self.system, "instance": self.instance, "state": self.state,
                "cause": self.cause, "reason": self.reason, "since": self.since,
                "until": self.until, "drained": self.drained, "drained_by": self.drained_by,
                "transitions": [t.payload() for t in self.transitions], "written": now}

    @classmethod
    def of(cls, system: str, instance: str, raw: dict[str, Any] | None) -> InstanceState:
        """From a stored payload (None: never recorded, so up). Unknown values read as
        the safe default: a record this version cannot read routes as before."""
        if raw is None:
            return cls(system, instance)
        state = raw.get("state")
        cause = raw.get("cause")
        return cls(
            system, instance,
            state=state if state in ("up", "down", "half_open") else "up",
            cause=cause if cause in ("active", "passive") else "",
            reason=str(raw.get("reason", "")), since=float(raw.get("since", 0)),
            until=float(raw.get("until", 0)), drained=raw.get("drained") is True,
            drained_by=str(raw.get("drained_by", "")),
            transitions=tuple(Transition.of(t) for t in raw.get("transitions", ())
                              if isinstance(t, dict)),
            written=float(raw.get("written", 0)))
