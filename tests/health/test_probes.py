"""Active checks against real instances: thresholds both ways, what counts as healthy,
one prober at a time however many processes watch, and the half-open trial's start."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from gateway.config import HealthRules, ServiceItem, SystemConfig, Systems
from gateway.health import HealthView, Leases, Prober, SharedHealth, Target
from gateway.store import Store
from tests.health.conftest import ITEM, Processes
from tests.support.health import HealthEndpoint, until
from tests.support.servers import free_port, serve


def rules(**changes: float | int | bool | str) -> HealthRules:
    return HealthRules.model_validate({"path": "/healthz", "interval": 1, "timeout": 0.5,
                                       "healthy_threshold": 2, "unhealthy_threshold": 2,
                                       **changes})


def one_system(*instances: str) -> Systems:
    return Systems([SystemConfig(id="sys", name="测试系统", region="430100",
                                 level="prefecture", instances=instances,
                                 connector="signed-header", items=(ITEM,))],
                   [ServiceItem(code=ITEM, name="测试事项")])


def prober(store: Store, systems: Systems, http: httpx.AsyncClient, rule: HealthRules,
           node: str = "node-1") -> Prober:
    shared = SharedHealth(store, systems)
    return Prober(shared, HealthView(shared), http,
                  [Target(system, instance, rule) for system in systems
                   for instance in system.instances], leases=Leases(store, node))


@contextlib.asynccontextmanager
async def running(*probers: Prober) -> AsyncIterator[None]:
    async with anyio.create_task_group() as group:
        for one in probers:
            group.start_soon(one.run)
        yield
        group.cancel_scope.cancel()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield client


async def state_of(one: Prober, instance: str) -> str:
    return (await one.shared.read("sys", instance))[0].state


async def test_failing_probes_take_an_instance_out_and_passing_ones_bring_it_back(
        processes: Processes, http: httpx.AsyncClient) -> None:
    endpoint = HealthEndpoint(status=503)
    with serve(endpoint.app()) as url:
        one = prober(processes(), one_system(url), http, rules(unhealthy_threshold=3))
        async with running(one):
            await until(lambda: _is(one, url, "down"), "the instance taken out")
            state, _ = await one.shared.read("sys", url)
            assert (state.cause, state.reason) == (
                "active", "3 health checks failed, the last: status 503")
            endpoint.status = 200
            await until(lambda: _is(one, url, "up"), "the instance back")
    state, _ = await one.shared.read("sys", url)
    assert state.transitions[0].reason == "2 health checks passed"
    assert [(t.previous, t.state) for t in state.transitions] == [("down", "up"),
                                                                  ("up", "down")]
    check = await one.shared.last_check("sys", url)
    assert check is not None
    assert check.ok
    assert check.node == "node-1"


async def _is(one: Prober, instance: str, state: str) -> bool:
    return await state_of(one, instance) == state


@pytest.mark.parametrize(("status", "ok", "error"), [
    (200, True, ""), (204, True, ""), (302, True, ""), (404, False, "status 404"),
    (500, False, "status 500")])
async def test_a_2xx_or_3xx_answer_is_healthy(processes: Processes, http: httpx.AsyncClient,
                                              status: int, ok: bool, error: str) -> None:
    endpoint = HealthEndpoint(status=status)
    with serve(endpoint.app()) as url:
        one = prober(processes(), one_system(url), http, rules())
        result = await one.probe(one.targets[0])
    assert (result.ok, result.status, result.error) == (ok, status, error)
    assert endpoint.probes == ["Roam-HealthCheck/1 (node-1)"]


async def test_no_answer_in_time_or_no_connection_is_a_failure(processes: Processes,
                                                               http: httpx.AsyncClient) -> None:
    endpoint = HealthEndpoint()
    endpoint.slow = 1.0
    dead = f"http://127.0.0.1:{free_port()}"
    with serve(endpoint.app()) as url:
        slow = prober(processes(), one_system(url), http, rules(path="/slow", timeout=0.3))
        late = await slow.probe(slow.targets[0])
        gone = prober(processes(), one_system(dead), http, rules())
        refused = await gone.probe(gone.targets[0])
    assert (late.ok, late.status, late.error) == (False, None, "timeout")
    assert (refused.ok, refused.error) == (False, "connect error")


async def test_one_process_probes_an_instance_at_a_time(processes: Processes,
                                                        http: httpx.AsyncClient) -> None:
    endpoint = HealthEndpoint()
    with serve(endpoint.app()) as url:
        systems = one_system(url)
        watchers = [prober(processes(), systems, http, rules(interval=2), node=f"node-{n}")
                    for n in range(3)]
        async with running(*watchers):
            await until(lambda: _count(endpoint, 4), "four probes")
    assert len(endpoint.probers()) == 1, endpoint.probes


async def _count(endpoint: HealthEndpoint, n: int) -> bool:
    return len(endpoint.probes) >= n


async def test_a_prober_that_stops_hands_its_instances_over(processes: Processes,
                                                            http: httpx.AsyncClient) -> None:
    endpoint = HealthEndpoint()
    with serve(endpoint.app()) as url:
        systems = one_system(url)
        first = prober(processes(), systems, http, rules(), node="node-1")
        second = prober(processes(), systems, http, rules(), node="node-2")
        first_only = anyio.CancelScope()

        async def run_first() -> None:
            with first_only:
                await first.run()

        async with anyio.create_task_group() as group:
            group.start_soon(run_first)
            await until(lambda: _holds(endpoint, "Roam-HealthCheck/1 (node-1)"),
                        "the first process probing")
            group.start_soon(second.run)
            first_only.cancel()  # it stops in good order: its lease runs out at once
            await until(lambda: _holds(endpoint, "Roam-HealthCheck/1 (node-2)"),
                        "the second process probing")
            group.cancel_scope.cancel()


async def _holds(endpoint: HealthEndpoint, agent: str) -> bool:
    return agent in endpoint.probers()


async def test_the_cooldown_of_an_ejected_instance_ends_in_half_open(
        processes: Processes, http: httpx.AsyncClient) -> None:
    """Traffic ejected it; with no probes at all, the lease holder still starts its trial."""
    url = f"http://127.0.0.1:{free_port()}"
    one = prober(processes(), one_system(url), http, rules(active=False))
    await one.shared.change("sys", url, lambda s: s.moved(
        "down", "3 failed requests in a row", now=one.clock(), cause="passive",
        until=one.clock() + 1))
    async with running(one):
        await until(lambda: _is(one, url, "half_open"), "the half-open trial")
    state, _ = await one.shared.read("sys", url)
    assert state.transitions[0].reason == "cooldown over: one trial request decides"
