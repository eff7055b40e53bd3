"""The console's picture: every system by city and county, from the shared health in the
store (what every gateway process routes by) and this process's metrics.

``status()`` is the JSON the page renders and ``/ops/api/status`` answers; times are
China Standard Time (UTC+8, no daylight saving) as operators read them. Taking an
instance out of rotation is the shared health's drain (audited there, with who and why),
seen by every process within ``[health] refresh``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from gateway.config import SystemConfig, Systems
from gateway.health import CheckResult, InstanceState, SharedHealth, UnknownInstance
from gateway.metrics import Metrics
from gateway.metrics.traffic import Traffic
from gateway.ops.console import UnknownTarget
from gateway.regions import RegionDirectory

__all__ = ["CST", "HealthBoard"]

CST = timezone(timedelta(hours=8), "CST")
PROVINCE = "430000"
RECENT = 30  # transitions shown
STATE_NAMES = {"up": "正常", "trial": "试探恢复中", "down": "故障", "drained": "已摘除"}
CHANGE_NAMES = {"up": "正常", "half_open": "试探恢复中", "down": "故障", "drained": "已摘除"}


def _time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class HealthBoard:
    """Satisfies :class:`gateway.ops.console.Board`."""

    def __init__(self, shared: SharedHealth, *, systems: Systems, regions: RegionDirectory,
                 metrics: Metrics) -> None:
        self.shared = shared
        self.systems = systems
        self.regions = regions
        self.metrics = metrics

    def _group_of(self, system: SystemConfig) -> str:
        """The city a system belongs to (a county's prefecture), or the province."""
        if system.region == PROVINCE:
            return PROVINCE
        region = self.regions.get(system.region)
        if region is not None and region.level == "prefecture":
            return region.code
        above = [r for r in self.regions.ancestors(system.region) if r.level == "prefecture"]
        return above[0].code if above else PROVINCE

    def _region_name(self, code: str) -> str:
        region = self.regions.get(code)
        return region.name if region is not None else code

    async def status(self) -> dict[str, Any]:
        rows = await self.shared.status()
        traffic = self.metrics.traffic()
        by_system: dict[str, list[tuple[InstanceState, CheckResult | None]]] = {}
        for state, check in rows:
            by_system.setdefault(state.system, []).append((state, check))
        groups: dict[str, list[dict[str, Any]]] = {}
        for system in self.systems:
            instances = [self._instance(state, check)
                         for state, check in by_system.get(system.id, [])]
            groups.setdefault(self._group_of(system), []).append(
                self._system(system, instances, traffic.get(system.id)))
        transitions = sorted(
            ((state, t) for state, _ in rows for t in state.transitions),
            key=lambda pair: pair[1].at, reverse=True)[:RECENT]
        return {
            "generated_at": _time(time.time()),
            "groups": [{"region": code, "name": "湖南省（省级）" if code == PROVINCE
                        else self._region_name(code), "systems": systems}
                       for code, systems in sorted(groups.items())],
            "transitions": [{"at": _time(t.at), "system": state.system,
                             "instance": state.instance,
                             "from": CHANGE_NAMES.get(t.previous, t.previous),
                             "to": CHANGE_NAMES.get(t.state, t.state),
                             "reason": t.reason, "by": t.by} for state, t in transitions],
        }

    def _system(self, system: SystemConfig, instances: list[dict[str, Any]],
                 traffic: Traffic | None) -> dict[str, Any]:
        return {"id": system.id, "name": system.name, "region": system.region,
                "region_name": self._region_name(system.region), "level": system.level,
                "requests": traffic.requests if traffic else 0,
                "p50_ms": _milliseconds(traffic.p50) if traffic else None,
                "p99_ms": _milliseconds(traffic.p99) if traffic else None,
                "error_rate": traffic.error_rate if traffic else None,
                "instances": instances}

    @staticmethod
    def _instance(state: InstanceState, check: CheckResult | None) -> dict[str, Any]:
        availability = state.availability
        return {
            "url": state.instance, "state": availability, "state_name":
            STATE_NAMES[availability], "circuit": state.circuit, "drained": state.drained,
            "reason": state.reason,
            "last_check": None if check is None else {
                "at": _time(check.at), "ok": check.ok, "status": check.status,
                "detail": check.error, "seconds": round(check.duration, 3)},
        }

    async def set_rotation(self, system_id: str, instance: str, in_rotation: bool, *,
                           by: str, reason: str) -> None:
        try:
            if in_rotation:
                await self.shared.undrain(system_id, instance, by=f"ops:{by}", reason=reason)
            else:
                await self.shared.drain(system_id, instance, by=f"ops:{by}", reason=reason)
        except UnknownInstance:
            raise UnknownTarget(f"{system_id} {instance}") from None
