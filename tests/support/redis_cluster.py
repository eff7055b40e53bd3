"""Real Redis topologies the tests start themselves: a Cluster of three masters with a
replica each, and a Sentinel-watched master with a replica and three sentinels. Every
process is a ``redis-server`` on a free port in a throwaway directory, stopped at the end;
a test may kill any of them by PID."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.redis_server import unused_port

__all__ = ["RedisCluster", "RedisSentinels", "started_cluster", "started_sentinels"]


@dataclass
class Node:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class RedisCluster:
    nodes: list[Node] = field(default_factory=list)

    @property
    def seeds(self) -> list[str]:
        return [f"redis://{node.address}" for node in self.nodes[:3]]

    def masters(self) -> list[Node]:
        """The nodes that are masters now (by the cluster's own view)."""
        with redis.Redis(port=self.live()[0].port) as any_node:
            lines = any_node.execute_command("CLUSTER", "NODES").decode().splitlines()
        ports = {int(line.split()[1].split(":")[1].split("@")[0])
                 for line in lines if "master" in line.split()[2] and "fail" not in line}
        return [node for node in self.nodes if node.port in ports]

    def live(self) -> list[Node]:
        return [node for node in self.nodes if node.process.poll() is None]


@dataclass
class RedisSentinels:
    service: str
    master: Node
    replica: Node
    sentinels: list[Node]

    @property
    def addresses(self) -> list[str]:
        return [node.address for node in self.sentinels]


def _server(directory: Path, port: int, *extra: str) -> Node:
    workdir = directory / str(port)
    workdir.mkdir()
    argv = [_need("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(workdir), "--save", "", "--appendonly", "no",
            "--repl-diskless-sync-delay", "0", "--logfile", str(workdir / "log"), *extra]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL,  # noqa: S603 - fixed argv
                               stderr=subprocess.DEVNULL)
    node = Node(port, process)
    _wait_for(lambda: _pings(port), f"redis-server on {port} did not start", process)
    return node


def _cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too."""
    while True:
        port = unused_port()
        if port > 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _pings(port: int) -> bool:
    try:
        with redis.Redis(port=port, socket_timeout=0.3, socket_connect_timeout=0.3) as r:
            return bool(r.ping())
    except redis.RedisError:
        return False


def _wait_for(condition: object, what: str, process: subprocess.Popen[bytes] | None = None,
              within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: it exited")
        if time.monotonic() > deadline:
            raise RuntimeError(what)
        time.sleep(0.05)


def _need(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        # Fail, never skip: a silently skipped suite would hide a broken store.
        raise RuntimeError(f"no {program}: apt-get install redis-server redis-tools")
    return found


@contextlib.contextmanager
def started_cluster() -> Iterator[RedisCluster]:
    """Three masters and three replicas (``redis-cli --cluster create``), all slots
    covered, failover after 2 s without its master (``cluster-node-timeout``)."""
    cluster = RedisCluster()
    with tempfile.TemporaryDirectory(prefix="roam-cluster-") as directory:
        try:
            for _ in range(6):
                cluster.nodes.append(_server(
                    Path(directory), _cluster_port(), "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"))
            created = subprocess.run(  # noqa: S603 - fixed argv
                [_need("redis-cli"), "--cluster", "create", *(n.address for n in cluster.nodes),
                 "--cluster-replicas", "1", "--cluster-yes"],
                capture_output=True, text=True, timeout=60, check=False)
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout}")
            _wait_for(lambda: _cluster_ok(cluster.nodes), "the cluster did not settle")
            yield cluster
        finally:
            for node in cluster.nodes:
                node.kill()


def _cluster_ok(nodes: list[Node]) -> bool:
    """Every slot served, and every replica synced (one that never was would not take
    over its master)."""
    for node in nodes:
        try:
            with redis.Redis(port=node.port, socket_timeout=0.5) as r:
                info = r.execute_command("CLUSTER", "INFO").decode()
                replication = r.info("replication")
        except redis.RedisError:
            return False
        if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
            return False
        if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
            return False
    return True


@contextlib.contextmanager
def started_sentinels(service: str = "roam") -> Iterator[RedisSentinels]:
    """A master, its replica and three sentinels watching it (quorum 2, a master down
    for 1 s is failed over)."""
    with tempfile.TemporaryDirectory(prefix="roam-sentinel-") as directory:
        root = Path(directory)
        started: list[Node] = []
        try:
            master = _server(root, unused_port())
            started.append(master)
            replica = _server(root, unused_port(), "--replicaof", "127.0.0.1",
                              str(master.port))
            started.append(replica)
            sentinels = []
            for _ in range(3):
                port = unused_port()
                conf = root / f"sentinel-{port}.conf"
                conf.write_text(
                    f"port {port}\nbind 127.0.0.1\ndir {root}\n"
                    f"sentinel monitor {service} 127.0.0.1 {master.port} 2\n"
                    f"sentinel down-after-milliseconds {service} 1000\n"
                    f"sentinel failover-timeout {service} 5000\n"
                    f"sentinel parallel-syncs {service} 1\n", "utf-8")
                process = subprocess.Popen(  # noqa: S603 - fixed argv
                    [_need("redis-server"), str(conf), "--sentinel"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                node = Node(port, process)
                started.append(node)
                _wait_for(lambda p=port: _pings(p), "a sentinel did not start", process)
                sentinels.append(node)
            _wait_for(lambda: _synced(replica.port), "the replica did not sync")
            yield RedisSentinels(service, master, replica, sentinels)
        finally:
            for node in started:
                node.kill()


def _synced(port: int) -> bool:
    with redis.Redis(port=port) as r:
        info = r.info("replication")
    return bool(info.get("master_link_status") == "up")
