"""Active checks: one gateway process at a time probes each instance.

Every process watches every instance; a watch wakes three times per ``interval`` and
takes or renews the instance's lease (:mod:`gateway.health.leases`, TTL one interval).
Only the holder works: it probes every ``interval`` (``GET <instance><path>``; a 2xx or
3xx answer within ``timeout`` is healthy, anything else failed), records the result in
the store with the run it extends, so a process that takes over goes on counting from
there, and moves the instance: ``unhealthy_threshold`` failures in a row take it out,
``healthy_threshold`` successes in a row bring it back. It also starts the half-open
trial of an instance whose passive cooldown is over, and keeps the record alive.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import httpx

from gateway.config import HealthRules, SystemConfig
from gateway.errors import StoreError
from gateway.health.events import CheckResult
from gateway.health.leases import Leases
from gateway.health.shared import SharedHealth
from gateway.health.state import InstanceState, instance_id
from gateway.health.view import HealthView

__all__ = ["TOUCH_AFTER", "Prober", "Target"]

log = logging.getLogger("roam.health")

TOUCH_AFTER = 86400.0
"""Seconds after which the holder rewrites an instance's record, so it never expires."""


@dataclass(frozen=True)
class Target:
    """An instance to watch, with its system's rules."""

    system: SystemConfig
    instance: str
    rules: HealthRules

    @property
    def id(self) -> str:
        return instance_id(self.system.id, self.instance)


@dataclass
class _Run:
    """The holder's own memory of an instance between two probes."""

    held: bool = False
    due: float = 0.0  # wall time of the next probe
    successes: int = 0
    failures: int = 0


class Prober:
    def __init__(self, shared: SharedHealth, view: HealthView, http: httpx.AsyncClient,
                 targets: Sequence[Target], *, leases: Leases,
                 clock: Callable[[], float] = time.time) -> None:
        self.shared = shared
        self.view = view
        self.http = http
        self.targets = list(targets)
        self.leases = leases
        self.clock = clock
        self.user_agent = f"Roam-HealthCheck/1 ({leases.node})"

    async def run(self) -> None:
        """Watch every target for as long as the app runs; let the leases go at the end."""
        try:
            async with anyio.create_task_group() as group:
                for target in self.targets:
                    group.start_soon(self.watch, target)
        finally:
            # shielded: the app is stopping; a failure lets them run out within an interval
            with anyio.CancelScope(shield=True), anyio.move_on_after(2), \
                    contextlib.suppress(StoreError):
                await self.leases.let_go()

    async def watch(self, target: Target) -> None:
        step = target.rules.interval / 3
        run = _Run()
        failing = False
        await anyio.sleep(random.uniform(0, step))  # noqa: S311 - spreads processes' tries
        while True:
            try:
                await self.tend(target, run)
                failing = False
            except StoreError as exc:
                if not failing:
                    log.warning("health checks paused: the store failed", extra={
                        "system": target.system.id, "instance": target.instance,
                        "cause": str(exc)})
                failing = True
            except Exception:  # one target's bug must not stop the others
                log.exception("health check error", extra={"system": target.system.id,
                                                           "instance": target.instance})
            await anyio.sleep(step)

    async def tend(self, target: Target, run: _Run) -> None:
        """One wake-up: the lease, then (holding it) the due work. An instance judged by
        traffic alone (no active checks) needs a holder only while traffic has it out, to
        start its half-open trial: otherwise nothing is written at all."""
        rules = target.rules
        state = self.view.states.get((target.system.id, target.instance))
        if not rules.active and (state is None or state.state != "down"):
            run.held = False
            return
        if not await self.leases.hold(target.id, math.ceil(rules.interval)):
            run.held = False
            return
        now = self.clock()
        if not run.held:  # just taken over: go on from the last probe recorded
            last = await self.shared.last_check(target.system.id, target.instance)
            run.held = True
            run.successes, run.failures = (last.successes, last.failures) if last else (0, 0)
            run.due = last.at + rules.interval if last else now
        if state is not None:
            await self._keep(target, state, now)
        if rules.active and now >= run.due:
            run.due = now + rules.interval
            result = await self.probe(target, run)
            await self.shared.record_check(result)
            await self.judge(target, result)

    async def _keep(self, target: Target, state: InstanceState, now: float) -> None:
        """The cooldown of an ejected instance is over: half-open. An old record: rewritten."""
        node = self.leases.node
        if state.state == "down" and state.cause == "passive" and state.until <= now:
            def trial(current: InstanceState) -> InstanceState | None:
                if current.state != "down" or current.cause != "passive":
                    return None
                return current.moved("half_open", "cooldown over: one trial request decides",
                                     now=now, cause="passive", by=node)

            await self.shared.change(target.system.id, target.instance, trial)
        elif state.written and now - state.written > TOUCH_AFTER:
            await self.shared.change(target.system.id, target.instance, lambda current: current)

    async def probe(self, target: Target, run: _Run | None = None) -> CheckResult:
        """``GET`` the instance's check path once; the result extends ``run`` (a new run
        if none is given)."""
        run = run or _Run()
        rules = target.rules
        url = target.instance.rstrip("/") + rules.path
        at, started = self.clock(), time.perf_counter()
        status: int | None = None
        error = "timeout"
        with anyio.move_on_after(rules.timeout):
            try:
                async with self.http.stream("GET", url, timeout=rules.timeout,
                                            headers={"User-Agent": self.user_agent}) as answer:
                    status = answer.status_code
                error = "" if 200 <= status < 400 else f"status {status}"
            except httpx.TimeoutException:
                error = "timeout"
            except httpx.ConnectError:
                error = "connect error"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
        ok = not error
        run.successes, run.failures = (run.successes + 1, 0) if ok else (0, run.failures + 1)
        return CheckResult(target.system.id, target.instance, at, ok, status, error,
                           time.perf_counter() - started, self.leases.node,
                           run.successes, run.failures)

    async def judge(self, target: Target, result: CheckResult) -> None:
        """Move the instance if the run crossed a threshold."""
        rules, now, node = target.rules, result.at, self.leases.node
        if result.ok and result.successes >= rules.healthy_threshold:
            def restore(state: InstanceState) -> InstanceState | None:
                if state.state == "up" or (state.state == "down" and state.cause == "passive"):
                    return None  # up already, or its cooldown first (then half-open)
                return state.moved("up", f"{result.successes} health checks passed", now=now,
                                   by=node)

            await self.shared.change(target.system.id, target.instance, restore)
        elif not result.ok and result.failures >= rules.unhealthy_threshold:
            def eject(state: InstanceState) -> InstanceState | None:
                if state.state == "down":
                    return None
                return state.moved("down", f"{result.failures} health checks failed, the "
                                   f"last: {result.error}", now=now, cause="active", by=node)

            await self.shared.change(target.system.id, target.instance, eject)
