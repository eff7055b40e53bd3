"""Passive outlier detection: failed requests eject an instance, counted across processes;
a half-open instance takes one trial at a time; healthy traffic costs no store call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from gateway.config import Systems
from gateway.health import HealthChecks
from gateway.store import MemoryStore, RedisStore
from gateway.store.base import Counted
from tests.health.conftest import A, B, Processes
from tests.support.health import local_health


class CountingStore(MemoryStore):
    """A real MemoryStore that counts the calls made to it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def incr(self, kind: str, id: str, ttl: int, *, by: int = 1) -> Counted:
        self.calls += 1
        return await super().incr(kind, id, ttl, by=by)

    async def destroy(self, kind: str, id: str) -> None:
        self.calls += 1
        await super().destroy(kind, id)

    async def swap(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int, *,
                   expected: str | None, version: str) -> bool:
        self.calls += 1
        return await super().swap(kind, id, payload, ttl, expected=expected, version=version)


def gateways(processes: Processes, systems: Systems, n: int = 2,
             **rules: Any) -> list[HealthChecks]:
    return [local_health(systems, processes(), node=f"node-{i}", **rules) for i in range(n)]


async def test_failures_in_a_row_eject_the_instance(processes: Processes,
                                                    systems: Systems) -> None:
    (one,) = gateways(processes, systems, 1, passive_failures=3)
    for _ in range(2):
        await one.outliers.failed("pair", A, "status 502")
    assert one.availability("pair", A) == "up"
    await one.outliers.failed("pair", A, "connect error")
    assert one.availability("pair", A) == "down"
    assert one.availability("pair", B) == "up"
    state, _ = await one.shared.read("pair", A)
    assert (state.state, state.cause, state.reason) == (
        "down", "passive", "3 failed requests in a row, the last: connect error")
    assert state.until == pytest.approx(state.since + 30)


async def test_failures_seen_by_different_processes_add_up(processes: Processes,
                                                           systems: Systems) -> None:
    first, second = gateways(processes, systems, passive_failures=3)
    await first.outliers.failed("pair", A, "timeout")
    await second.outliers.failed("pair", A, "timeout")
    await first.outliers.failed("pair", A, "timeout")
    assert first.availability("pair", A) == "down"  # it made the change: known at once
    assert second.availability("pair", A) == "up"  # the other sees it on its next read
    await second.view.read()
    assert second.availability("pair", A) == "down"


async def test_a_success_in_any_process_starts_the_count_again(processes: Processes,
                                                               systems: Systems) -> None:
    first, second = gateways(processes, systems, passive_failures=3)
    await first.outliers.failed("pair", A, "status 500")
    await first.outliers.failed("pair", A, "status 500")
    await second.view.read()  # learns that a count is running
    await second.outliers.succeeded("pair", A)
    await first.outliers.failed("pair", A, "status 500")
    assert (await first.shared.read("pair", A))[0].state == "up"


async def test_healthy_traffic_makes_no_store_call(systems: Systems) -> None:
    store = CountingStore()
    checks = local_health(systems, store)
    for _ in range(100):
        assert checks.outliers.availability("pair", A) == "up"
        await checks.outliers.succeeded("pair", A)
    assert store.calls == 0


async def test_a_half_open_instance_takes_one_trial_at_a_time(processes: Processes,
                                                              systems: Systems) -> None:
    first, second = gateways(processes, systems, passive_failures=1)
    await first.outliers.failed("pair", A, "connect error")
    await first.shared.change("pair", A, lambda s: s.moved("half_open", "cooldown over",
                                                           now=1, cause="passive"))
    await second.view.read()
    system = systems.get("pair")
    assert system is not None
    claims = await asyncio.gather(*(checks.outliers.claim_trial(system, A)
                                    for checks in (first, second) * 5))
    assert claims.count(True) == 1
    winner = (first, second)[claims.index(True)]
    await winner.outliers.succeeded("pair", A)
    state, _ = await winner.shared.read("pair", A)
    assert (state.state, state.transitions[0].reason) == ("up", "trial request succeeded")


async def test_a_failed_trial_ejects_the_instance_again(processes: Processes,
                                                        systems: Systems) -> None:
    (one,) = gateways(processes, systems, 1, passive_failures=1, passive_cooldown=45)
    await one.outliers.failed("pair", A, "connect error")
    await one.shared.change("pair", A, lambda s: s.moved("half_open", "cooldown over",
                                                         now=1, cause="passive"))
    assert one.availability("pair", A) == "trial"
    await one.outliers.failed("pair", A, "status 503")
    state, _ = await one.shared.read("pair", A)
    assert (state.state, state.reason) == ("down", "trial request failed: status 503")
    assert state.until == pytest.approx(state.since + 45)


async def test_a_store_outage_drops_the_hint_not_the_request(
        systems: Systems, caplog: pytest.LogCaptureFixture) -> None:
    dead = RedisStore.from_url("redis://127.0.0.1:1/0?socket_connect_timeout=0.2")
    checks = local_health(systems, dead)
    system = systems.get("pair")
    assert system is not None
    with caplog.at_level(logging.WARNING, logger="roam.health"):
        for _ in range(3):
            await checks.outliers.failed("pair", A, "connect error")
        assert not await checks.outliers.claim_trial(system, A)
    assert [r.message for r in caplog.records] == ["passive health dropped: the store failed"]
    await dead.close()
