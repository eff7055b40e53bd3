"""A small cluster for end-to-end health tests: three real upstream instances (two of a
county's system, one of the province's), the shipped config on Redis with fast health
checks, and ``roam serve`` processes started and killed by the test."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import Systems, load_config
from tests.support.gateway import REPO, gateway_process, processes_env
from tests.support.health import HealthEndpoint
from tests.support.servers import free_port, serve

__all__ = ["BDC", "SECRET", "SYSTEMS", "Cluster", "cluster"]

BDC = "430000-BDC-001"
SECRET = "test-only-signed-header-secret-0123456789"

SYSTEMS = """
[[item]]
code = "430000-BDC-001"
name = "不动产登记查询"

[[system]]
id = "yuelu-docs"
name = "岳麓区不动产登记（测试）"
region = "430104"
level = "county"
instances = ["{a}", "{b}"]
connector = "signed-header"
connector_settings = {{ secret = "{secret}" }}
items = ["430000-BDC-001"]
health = {{ path = "/healthz" }}

[[system]]
id = "hunan-docs"
name = "湖南省不动产登记（测试）"
region = "430000"
level = "province"
instances = ["{p}"]
connector = "signed-header"
connector_settings = {{ secret = "{secret}" }}
items = ["430000-BDC-001"]
health = {{ path = "/healthz" }}
"""


class Cluster:
    """Three upstream instances (two of the county's system, one of the province's) and
    the config the gateways share: the shipped one, on Redis, with fast health checks."""

    def __init__(self, tmp: Path, redis_url: str, prefix: str) -> None:
        self.tmp = tmp
        self.a, self.b, self.p = HealthEndpoint("a"), HealthEndpoint("b"), HealthEndpoint("p")
        self.ports = {name: free_port() for name in ("a", "b", "p")}
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        (tmp / "systems.toml").write_text(SYSTEMS.format(secret=SECRET, **self.urls), "utf-8")
        clients = (REPO / "config" / "clients.toml").read_text("utf-8")  # no audiences:
        (tmp / "clients.toml").write_text(  # the shipped ones name the shipped systems
            re.sub(r"(?m)^token_exchange_audiences = .*$", "", clients), "utf-8")
        self.env = {
            **processes_env(tmp, redis_url, prefix), "ROAM_PROXY_PATH_MODE": "true",
            "ROAM_ROUTING_SYSTEMS_FILE": str(tmp / "systems.toml"),
            "ROAM_GATEWAY_CLIENTS_FILE": str(tmp / "clients.toml"),
            "ROAM_HEALTH_INTERVAL": "1", "ROAM_HEALTH_TIMEOUT": "0.5",
            "ROAM_HEALTH_UNHEALTHY_THRESHOLD": "2", "ROAM_HEALTH_HEALTHY_THRESHOLD": "2",
            "ROAM_HEALTH_PASSIVE_FAILURES": "3", "ROAM_HEALTH_PASSIVE_COOLDOWN": "2",
            "ROAM_HEALTH_REFRESH": "0.2",
        }
        self.redis_url, self.prefix = redis_url, prefix
        self.systems: Systems = load_config(REPO / "config" / "roam.toml",
                                            env=self.env).systems
        self.stack = contextlib.ExitStack()  # the gateways, then the instances left
        self.instances: dict[str, contextlib.ExitStack] = {}

    def up(self, name: str) -> None:
        """Start (or restart, on the same port) one upstream instance."""
        endpoint = {"a": self.a, "b": self.b, "p": self.p}[name]
        running = self.instances[name] = contextlib.ExitStack()
        running.enter_context(serve(endpoint.app(), self.ports[name]))
        self.stack.callback(running.close)

    def down(self, name: str) -> None:
        """Kill one upstream instance: nothing listens on its port any more."""
        self.instances.pop(name).close()

    def gateway(self, name: str, **env: str) -> tuple[str, subprocess.Popen[str]]:
        """A ``roam serve`` process of this cluster (its output in ``<name>.log``)."""
        return self.stack.enter_context(gateway_process(
            free_port(), env={**self.env, **env}, log=self.tmp / f"{name}.log"))

    def roam(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROAM_")}
        return subprocess.run(  # noqa: S603 - our own CLI, fixed argv
            [sys.executable, "-m", "gateway.cli", *args], cwd=REPO, env={**env, **self.env},
            capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def cluster(tmp_path: Path, redis_url: str, redis_prefix: str) -> Iterator[Cluster]:
    """The three instances up, no gateway yet (a test starts its own)."""
    made = Cluster(tmp_path, redis_url, redis_prefix)
    with made.stack:
        for name in ("a", "b", "p"):
            made.up(name)
        yield made
