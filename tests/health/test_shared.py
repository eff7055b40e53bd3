"""The shared picture: one transition however many processes see the same failure; the
operator's drain and undrain; what is logged and audited."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import pytest

from gateway.config import Systems
from gateway.health import CheckResult, InstanceState, SharedHealth, Transition, UnknownInstance
from gateway.health.state import instance_id
from gateway.store.base import Kind
from tests.health.conftest import A, B, Processes


class Seen:
    """An observer (as metrics will be): what it was told."""

    def __init__(self) -> None:
        self.transitions: list[tuple[str, str, str]] = []
        self.checks: list[CheckResult] = []
        self.pictures = 0

    def transitioned(self, state: InstanceState, change: Transition) -> None:
        self.transitions.append((state.instance, change.previous, change.state))

    def checked(self, result: CheckResult) -> None:
        self.checks.append(result)

    def pictured(self, states: Mapping[tuple[str, str], InstanceState]) -> None:
        self.pictures += 1


def eject(state: InstanceState) -> InstanceState | None:
    if state.state != "up":
        return None
    return state.moved("down", "3 failed requests in a row", now=100, cause="passive")


async def test_many_processes_seeing_one_failure_make_one_transition(
        processes: Processes, systems: Systems) -> None:
    seen = Seen()
    peers = [SharedHealth(processes(), systems, observers=[seen]) for _ in range(5)]
    changed = await asyncio.gather(*(peer.change("pair", A, eject) for peer in peers * 4))
    assert sum(c is not None for c in changed) == 1
    assert seen.transitions == [(A, "up", "down")]
    state, version = await peers[0].read("pair", A)
    assert (state.state, state.cause, version) == ("down", "passive", "1")
    assert len(state.transitions) == 1


async def test_a_change_that_finds_nothing_to_do_writes_nothing(
        processes: Processes, systems: Systems) -> None:
    shared = SharedHealth(processes(), systems)
    assert await shared.change("pair", A, lambda state: None) is None
    assert await shared.store.find(Kind.HEALTH_STATE, instance_id("pair", A)) is None


async def test_drain_and_undrain_are_audited_once(processes: Processes, systems: Systems,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    shared = SharedHealth(processes(), systems)
    with caplog.at_level(logging.INFO, logger="roam"):
        drained = await shared.drain("pair", "2", by="cli:ops", reason="upgrade")
        again = await shared.drain("pair", B, by="cli:ops")
        back = await shared.undrain("pair", B, by="ops-page:li")
    assert (drained.instance, drained.drained, drained.availability) == (B, True, "drained")
    assert again.drained
    assert len(again.transitions) == 1
    assert (back.drained, back.availability) == (False, "up")
    audited = [r for r in caplog.records if r.name == "roam.audit"]
    assert [(r.__dict__["state"], r.__dict__["by"], r.__dict__["reason"]) for r in audited] == [
        ("drained", "cli:ops", "upgrade"), ("up", "ops-page:li", "put back into rotation")]
    assert all(r.__dict__["system"] == "pair" and r.__dict__["instance"] == B
               for r in audited)
    warned = [r for r in caplog.records if r.name == "roam.health" and r.levelname == "WARNING"]
    assert len(warned) == 1  # leaving rotation is a warning; coming back is not


async def test_unknown_systems_and_instances_are_refused(processes: Processes,
                                                         systems: Systems) -> None:
    shared = SharedHealth(processes(), systems)
    with pytest.raises(UnknownInstance, match="no system 'nope'"):
        await shared.drain("nope", A, by="x")
    with pytest.raises(UnknownInstance, match="has no instance '3'"):
        await shared.drain("pair", "3", by="x")
    with pytest.raises(UnknownInstance, match="has no instance"):
        await shared.undrain("pair", "http://127.0.0.1:1", by="x")


async def test_a_state_change_ends_a_trial_claimed_before(processes: Processes,
                                                          systems: Systems) -> None:
    shared = SharedHealth(processes(), systems)
    await shared.store.incr(Kind.HEALTH_TRIAL, instance_id("pair", A), 60)
    await shared.change("pair", A, eject)
    assert (await shared.store.incr(Kind.HEALTH_TRIAL, instance_id("pair", A), 60)).value == 1


async def test_status_lists_every_instance_with_its_last_probe(processes: Processes,
                                                               systems: Systems) -> None:
    seen = Seen()
    shared = SharedHealth(processes(), systems, observers=[seen])
    result = CheckResult("pair", A, 50.0, False, 503, "status 503", 0.01, "n1", 0, 2)
    await shared.record_check(result)
    await shared.change("pair", B, eject)
    rows = await shared.status()
    assert [(s.instance, s.state, c) for s, c in rows] == [(A, "up", result),
                                                           (B, "down", None)]
    assert seen.checks == [result]
