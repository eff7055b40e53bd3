"""A process's copy of the shared picture: another process's change reaches it on the
next read; a failed read keeps what it had."""

from __future__ import annotations

import logging

import anyio
import pytest

from gateway.config import Systems
from gateway.health import HealthView, InstanceState, SharedHealth
from gateway.store import RedisStore
from tests.health.conftest import A, B, Processes
from tests.health.test_shared import Seen, eject


async def test_another_process_s_change_is_seen_on_the_next_read(processes: Processes,
                                                                  systems: Systems) -> None:
    seen = Seen()
    here = HealthView(SharedHealth(processes(), systems, observers=[seen]))
    there = SharedHealth(processes(), systems)
    await there.change("pair", A, eject)
    await there.drain("pair", B, by="ops")
    assert (here.availability("pair", A), here.availability("pair", B)) == ("up", "up")
    await here.read()
    assert (here.availability("pair", A), here.availability("pair", B)) == ("down", "drained")
    assert here.read_at > 0
    assert seen.pictures == 1
    assert set(here.states) == {("pair", A), ("pair", B)}


async def test_a_change_made_here_is_known_at_once(processes: Processes,
                                                   systems: Systems) -> None:
    shared = SharedHealth(processes(), systems)
    view = HealthView(shared)
    await shared.change("pair", A, eject)
    assert view.availability("pair", A) == "down"


async def test_a_failed_read_keeps_the_last_picture(systems: Systems,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    dead = RedisStore.from_url("redis://127.0.0.1:1/0?socket_connect_timeout=0.1")
    view = HealthView(SharedHealth(dead, systems), refresh=0.1)
    down = eject(InstanceState("pair", A))
    assert down is not None
    view.learn(down)
    with caplog.at_level(logging.WARNING, logger="roam.health"), \
            anyio.move_on_after(0.6):
        await view.run()
    assert view.availability("pair", A) == "down"
    assert [r.message for r in caplog.records] == [
        "health picture not read: the store failed"]  # once per outage, not per read
    await dead.close()
