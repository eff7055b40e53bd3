"""The text ``roam routes status`` prints: every instance's health from the shared state."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from gateway.config import HealthRules
from gateway.health.events import CheckResult
from gateway.health.state import InstanceState

__all__ = ["status_table"]

RECENT = 20  # transitions listed under the table, newest first


def status_table(rows: Sequence[tuple[InstanceState, CheckResult | None]],
                 rules: Mapping[str, HealthRules], *, where: str, now: float) -> str:
    """One line per instance (health, circuit, rotation, last check), the reason of any
    that is not up, then the most recent transitions of all of them."""
    header = ("system", "instance", "health", "circuit", "rotation", "last check")
    table = [header]
    notes: dict[int, str] = {}
    for state, check in rows:
        health = "drained" if state.drained else state.state.replace("_", "-")
        rotation = f"out (by {state.drained_by})" if state.drained else "in"
        active = rules[state.system].active if state.system in rules else True
        table.append((state.system, state.instance, health, state.circuit, rotation,
                      _check(check) if active else "checks off"))
        if state.state != "up":
            notes[len(table) - 1] = f"{state.circuit} since {_time(state.since)}: {state.reason}"
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [f"instance health from {where}, {_time(now)}", ""]
    for index, row in enumerate(table):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index in notes:
            lines.append(" " * (widths[0] + 2) + "  " + notes[index])
    changes = sorted(((t, s) for s, _ in rows for t in s.transitions),
                     key=lambda pair: pair[0].at, reverse=True)[:RECENT]
    lines += ["", "recent transitions (newest first):" if changes else "no transitions yet"]
    for change, state in changes:
        by = f" (by {change.by})" if change.by else ""
        lines.append(f"  {_time(change.at)}  {state.system}  {state.instance}  "
                     f"{change.previous.replace('_', '-')} → {change.state.replace('_', '-')}"
                     f"  {change.reason}{by}")
    return "\n".join(lines) + "\n"


def _check(check: CheckResult | None) -> str:
    if check is None:
        return "not checked yet"
    outcome = "ok" if check.ok else f"failed: {check.error}"
    run = check.successes if check.ok else check.failures
    return (f"{_time(check.at)} {outcome} ({check.duration * 1000:.0f} ms, "
            f"{run} in a row, by {check.node})")


def _time(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "-"
