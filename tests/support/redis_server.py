"""A real Redis for tests (never a fake), shared as a pytest plugin.

Load it with ``pytest_plugins = ["tests.support.redis_server"]``. The URL comes from
``REDIS_URL``, else a server already answering on 127.0.0.1:6379 (database 15, out of the
way of a developer's database 0), else a throwaway ``redis-server`` started here.
Tests may share that Redis with people, so each test gets its own key prefix and removes
only keys under it: nothing here ever flushes a database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import uuid4

import pytest
import redis

from tests.support.servers import free_port

__all__ = ["RedisServer", "delete_prefixed", "redis_prefix", "redis_server_url", "redis_url",
           "started_redis_server", "unused_port"]

_LOCAL_URL = "redis://127.0.0.1:6379/15"


def unused_port() -> int:
    """A port nothing listens on right now (for own servers and dead-server tests), never
    one handed out before in this run."""
    return free_port()


def _answers(url: str, timeout: float = 0.5) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class RedisServer:
    """A ``redis-server`` process of the test's own: its URL, and a way to take it down."""

    def __init__(self, url: str, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.process = process

    def stop(self) -> None:
        """Terminate the server (a test's outage) and wait until it is gone."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def started_redis_server() -> Iterator[RedisServer]:
    """A throwaway ``redis-server`` on a free port, stopped on exit (or earlier by the
    test, with :meth:`RedisServer.stop`)."""
    executable = shutil.which("redis-server")
    if executable is None:
        # Fail, never skip: a silently skipped Redis suite would hide a broken store.
        raise RuntimeError("no REDIS_URL, nothing on 127.0.0.1:6379 and no redis-server: "
                           "apt-get install redis-server")
    with tempfile.TemporaryDirectory(prefix="roam-redis-") as workdir:
        port = unused_port()
        url = f"redis://127.0.0.1:{port}/0"
        argv = [executable, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir]
        argv += ["--save", "", "--appendonly", "no"]  # a throwaway: never touch the disk
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = RedisServer(url, process)
        try:
            deadline = time.monotonic() + 10
            while not _answers(url, timeout=0.2):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {port} did not start")
                time.sleep(0.05)
            yield server
        finally:
            server.stop()


@contextmanager
def redis_server_url() -> Iterator[str]:
    """Yield a URL of a working Redis; a server started here is stopped on exit."""
    from_env = os.environ.get("REDIS_URL")
    if from_env:
        yield from_env
        return
    if _answers(_LOCAL_URL):
        yield _LOCAL_URL
        return
    with started_redis_server() as server:
        yield server.url


def delete_prefixed(url: str, prefix: str) -> int:
    """Delete the keys under ``prefix`` (glob characters escaped), one key at a time."""
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
    client = redis.Redis.from_url(url)
    try:
        deleted = 0
        for key in client.scan_iter(match=pattern, count=500):
            deleted += int(client.delete(key))  # single-key DEL: keys may span Cluster slots
        return deleted
    finally:
        client.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to stop, freeze or kill."""
    with started_redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of the session's Redis."""
    with redis_server_url() as url:
        yield url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards, nothing else."""
    prefix = f"roamtest:{uuid4().hex}:"
    yield prefix
    delete_prefixed(redis_url, prefix)
