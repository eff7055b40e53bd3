"""``roam serve --workers N`` (gateway/workers.py): one port, N real worker processes on a
redis-server of the test's own; tokens any worker issued work at every other; a worker
killed is replaced; SIGTERM stops them all; and the combinations that cannot agree are
refused before anything starts."""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.support.cli import roam
from tests.support.gateway import audit_file, gateway_process, processes_env
from tests.support.metrics import scrape, value
from tests.support.redis_server import RedisServer
from tests.support.rp import authorize_url, full_login, rp_client
from tests.support.servers import free_port

PREFIX = "roam-test-workers:"


@pytest.fixture
def shared(tmp_path: Path, own_redis: RedisServer) -> dict[str, str]:
    """What the workers share: Redis, a key directory, the secret, the metrics files."""
    metrics = tmp_path / "prometheus"
    metrics.mkdir()
    return {**processes_env(tmp_path, own_redis.url, PREFIX),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            "ROAM_METRICS_TOKEN": secrets.token_urlsafe(32), "ROAM_AUDIT_BATCH_INTERVAL": "0.2"}


def workers_of(parent: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == parent:
                found.add(int(entry.name))
    return found


def wait_for(condition: object, what: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def silent_hops(url: str, browser: httpx.Client, count: int) -> None:
    """``count`` silent SSO hops, each code redeemed and its token used on connections of
    their own, so the kernel spreads them over the workers."""
    for _ in range(count):
        client = rp_client("changsha-gov", url)
        auth_url, verifier = authorize_url(client, url, prompt="none", nonce="n")
        callback = browser.get(auth_url).headers["location"]
        token = client.fetch_token(f"{url}/token", authorization_response=callback,
                                   code_verifier=verifier)
        with httpx.Client() as fresh:
            answer = fresh.get(f"{url}/userinfo",
                               headers={"Authorization": f"Bearer {token['access_token']}"})
        assert answer.status_code == 200, answer.text


def nodes_in_trail(port: int) -> set[str]:
    path = audit_file(port)
    if not path.exists():
        return set()
    lines = path.read_text("utf-8").splitlines()
    return {json.loads(line).get("node", "") for line in lines if line.strip()} - {""}


def test_workers_share_one_port_and_each_other_s_tokens(shared: dict[str, str],
                                                        tmp_path: Path) -> None:
    port = free_port()
    with gateway_process(port, env={**shared, "ROAM_GATEWAY_WORKERS": "2"},
                         log=tmp_path / "workers.log") as (url, parent):
        wait_for(lambda: len(workers_of(parent.pid)) == 2, "two workers did not start")
        first = workers_of(parent.pid)
        with httpx.Client(base_url=url) as browser:
            full_login(url, browser)
            silent_hops(url, browser, 24)
            # both wrote audit events: both served
            wait_for(lambda: len(nodes_in_trail(port)) == 2, "one worker served everything")
            assert {node.rpartition(":")[2] for node in nodes_in_trail(port)} == {
                str(pid) for pid in first}

            # a worker killed is replaced, and the service goes on meanwhile
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: len(workers_of(parent.pid) - {victim}) == 2,
                     "the dead worker was not replaced")
            silent_hops(url, browser, 6)
            samples = scrape(url, shared["ROAM_METRICS_TOKEN"])
            # a scrape sums the live workers' counts and what the dead one had counted
            assert value(samples, "roam_tokens_issued_total",
                         grant_type="authorization_code") == 1 + 24 + 6

        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=40) == 0
        assert not workers_of(parent.pid)


@pytest.mark.parametrize(("drop", "expected"), [
    ({"ROAM_STORE_BACKEND": "memory"}, "store.backend: memory is one process's own"),
    ({"ROAM_GATEWAY_KEY_DIR": ""}, "gateway.key_dir: empty (ephemeral keys)"),
    ({"ROAM_SECRET": ""}, "gateway: no secret ($ROAM_SECRET"),
    ({"PROMETHEUS_MULTIPROC_DIR": ""}, "PROMETHEUS_MULTIPROC_DIR: unset"),
])
def test_what_workers_cannot_share_is_refused_before_anything_starts(
        shared: dict[str, str], drop: dict[str, str], expected: str) -> None:
    env = {**shared, **drop, "ROAM_GATEWAY_PORT": str(free_port())}
    env = {k: v for k, v in env.items() if v}
    result = roam("serve", "--workers", "3", env=env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    checked = roam("config", "check", "--workers", "3", env=env)
    assert checked.returncode == 2
    assert expected in checked.stderr


def test_a_redis_store_with_ephemeral_keys_is_refused_even_alone(
        shared: dict[str, str]) -> None:
    env = {k: v for k, v in shared.items() if k != "ROAM_GATEWAY_KEY_DIR"}
    result = roam("serve", env={**env, "ROAM_GATEWAY_PORT": str(free_port())})
    assert result.returncode == 2
    assert "gateway.key_dir: empty (ephemeral keys)" in result.stderr
    assert roam("config", "check", env=env).returncode == 2
