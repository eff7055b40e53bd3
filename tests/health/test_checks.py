"""Shared health end to end: real upstream servers, real ``roam serve`` processes, one
Redis. An instance killed is ejected within its thresholds and traffic moves to the other
instance, then a level up with a notice; it comes back after recovery. Two gateway
processes agree on the picture, only one of them probes, and a process killed with
SIGKILL hands its probes over. Nothing here waits on a clock: every wait is for a
condition, with a generous deadline."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.health import InstanceState, SharedHealth
from gateway.store import RedisStore
from tests.support.cluster import BDC, Cluster
from tests.support.gateway import CITIZEN, DEMO_PASSWORD, form_field
from tests.support.health import HealthEndpoint, until


@pytest.fixture
async def shared(cluster: Cluster) -> AsyncIterator[SharedHealth]:
    store = RedisStore.from_url(cluster.redis_url, prefix=cluster.prefix)
    yield SharedHealth(store, cluster.systems)
    await store.close()


@contextlib.asynccontextmanager
async def logged_in(gateway: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser of the demo citizen, logged in at ``gateway`` (through /go, as people do)."""
    async with httpx.AsyncClient(base_url=gateway, follow_redirects=False,
                                 timeout=10) as browser:
        sent = await browser.get(f"/go/{BDC}?region=430104")
        assert sent.status_code == 303
        page = await browser.get((await browser.get(sent.headers["location"]))
                                 .headers["location"])
        back = await browser.post("/login", data={
            "csrf_token": form_field(page.text, "csrf_token"), "r": form_field(page.text, "r"),
            "username": CITIZEN, "password": DEMO_PASSWORD})
        assert back.status_code == 303, back.text
        yield browser


async def state(shared: SharedHealth, system: str, instance: str) -> InstanceState:
    return (await shared.read(system, instance))[0]


async def test_a_killed_instance_is_ejected_traffic_moves_and_it_comes_back(
        cluster: Cluster, shared: SharedHealth) -> None:
    a, b, p = cluster.urls["a"], cluster.urls["b"], cluster.urls["p"]
    gateway, _ = cluster.gateway("gw")
    async with logged_in(gateway) as browser:
        served = {(await browser.get("/s/yuelu-docs/x")).text for _ in range(4)}
        assert served == {"a", "b"}  # both instances take traffic

        cluster.down("a")
        answers = [await browser.get("/s/yuelu-docs/x") for _ in range(6)]
        assert [(r.status_code, r.text) for r in answers] == [(200, "b")] * 6  # retried on b
        down = await until(lambda: _out(shared, "yuelu-docs", a), "a ejected")
        assert down.reason in ("3 failed requests in a row, the last: connect error",
                               "2 health checks failed, the last: connect error")
        assert (await state(shared, "yuelu-docs", b)).state == "up"

        cluster.b.status = 503  # now b fails its checks: the county has no instance left
        await until(lambda: _out(shared, "yuelu-docs", b), "b ejected")
        await until(lambda: _refused(browser), "the gateway seeing b out")
        went = await browser.get(f"/go/{BDC}?region=430104")
        assert went.status_code == 200  # a page says where to, and why
        assert "岳麓区不动产登记（测试）暂时无法访问" in went.text
        assert "已为您转到湖南省的“湖南省不动产登记（测试）”办理" in went.text
        assert 'href="/s/hunan-docs/"' in went.text
        assert (await browser.get("/s/hunan-docs/")).text == "p"
        page = await browser.get("/s/yuelu-docs/x", headers={"Accept": "text/html",
                                                       "Sec-Fetch-Mode": "navigate"})
        assert page.status_code == 303  # a page of the county's system: on through /go
        assert page.headers["location"] == f"{gateway}/go/{BDC}?region=430104"

        cluster.b.status = 200  # b recovers, and a comes back on its port
        cluster.up("a")
        await until(lambda: _in(shared, "yuelu-docs", a), "a back in rotation")
        await until(lambda: _in(shared, "yuelu-docs", b), "b back in rotation")
        await until(lambda: _straight(browser), "/go straight to the county again")
        assert {(await browser.get("/s/yuelu-docs/x")).text for _ in range(4)} == {"a", "b"}
    assert (await state(shared, "hunan-docs", p)).transitions == ()
    status = cluster.roam("routes", "status")
    assert status.returncode == 0, status.stderr
    assert "down → up" in status.stdout or "half-open → up" in status.stdout


async def _out(shared: SharedHealth, system: str, instance: str) -> InstanceState | None:
    found = await state(shared, system, instance)
    return found if found.state == "down" else None


async def _in(shared: SharedHealth, system: str, instance: str) -> bool:
    return (await state(shared, system, instance)).state == "up"


async def _refused(browser: httpx.AsyncClient) -> bool:
    return (await browser.get("/s/yuelu-docs/x")).status_code == 503


async def _straight(browser: httpx.AsyncClient) -> bool:
    return (await browser.get(f"/go/{BDC}?region=430104")).status_code == 303


async def _only_b(browser: httpx.AsyncClient) -> bool:
    return {(await browser.get("/s/yuelu-docs/x")).text for _ in range(4)} == {"b"}


async def test_two_gateways_agree_and_only_one_probes_until_it_is_killed(
        cluster: Cluster, shared: SharedHealth) -> None:
    a = cluster.urls["a"]
    slower = {"ROAM_HEALTH_INTERVAL": "2"}  # leases of 2 s, renewed every 0.67 s
    first, first_process = cluster.gateway("gw1", **slower)
    second, second_process = cluster.gateway("gw2", **slower)
    await until(lambda: _probed(cluster.a, 4), "four probes of a")
    (prober,) = cluster.a.probers()  # one process probes, however many watch
    holder = int(prober.split(":")[1])
    assert holder in (first_process.pid, second_process.pid)

    drained = cluster.roam("routes", "drain", "yuelu-docs", "1", "--reason", "upgrade")
    assert drained.returncode == 0, drained.stderr
    assert "out of rotation" in drained.stdout
    async with logged_in(first) as one, logged_in(second) as two:
        for browser in (one, two):  # both see it within a refresh, whoever asks
            await until(functools.partial(_only_b, browser), "a out everywhere")
    status = cluster.roam("routes", "status")
    assert re.search(r"yuelu-docs\s+" + re.escape(a) + r"\s+drained\s+closed\s+out", status.stdout)
    assert "up → drained  upgrade (by cli:" in status.stdout

    os.kill(holder, signal.SIGKILL)  # no goodbye: its lease runs out by itself
    survivor = second_process.pid if holder == first_process.pid else first_process.pid
    await until(lambda: _probed_by(cluster.a, survivor), "the survivor probing a")
    for process in (first_process, second_process):
        if process.pid == holder:
            process.wait(timeout=10)


async def _probed(endpoint: HealthEndpoint, n: int) -> bool:
    return len(endpoint.probes) >= n


async def _probed_by(endpoint: HealthEndpoint, pid: int) -> bool:
    return any(int(agent.split(":")[1]) == pid for agent in endpoint.probers())
