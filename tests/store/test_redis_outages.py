"""RedisStore when its Redis restarts or freezes, against redis-servers the tests start
and stop: reads survive a quick restart, a frozen server fails calls within the
configured timeout, and it recovers by itself."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from gateway.errors import StoreError
from gateway.store import RedisStore
from tests.support.redis_server import _answers, started_redis_server, unused_port

PREFIX = "roam-test-outage:"


@contextmanager
def redis_on(port: int, workdir: str) -> Iterator[subprocess.Popen[bytes]]:
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
            "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # noqa: S603
    try:
        deadline = time.monotonic() + 10
        while not _answers(f"redis://127.0.0.1:{port}/0", timeout=0.2):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


async def answered(store: RedisStore, within: float = 10) -> None:
    """Wait until the store answers a call again (it must, by itself)."""
    deadline = time.monotonic() + within
    while True:
        try:
            await store.find("session", "probe")
            return
        except StoreError:
            assert time.monotonic() < deadline, "the store never answered again"
            await asyncio.sleep(0.1)


async def test_reads_work_at_once_after_a_quick_restart() -> None:
    """The pool's connections to the old server are dead: a read is sent again on a new
    connection (redis-py 8.2 finds the dead one before sending anything)."""
    port = unused_port()
    with tempfile.TemporaryDirectory() as workdir:
        store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0", prefix=PREFIX)
        try:
            with redis_on(port, workdir):
                await store.upsert("session", "s1", {"n": 1}, 60)
                assert await store.find("session", "s1") == {"n": 1}
            with redis_on(port, workdir):  # the same port, a new server, nothing kept
                assert await store.find("session", "s1") is None
                assert await store.find_versioned("session", "s1") is None
                await store.destroy("session", "s1")
                await store.upsert("session", "s2", {"n": 2}, 60)
                assert await store.find("session", "s2") == {"n": 2}
        finally:
            await store.close()


async def test_a_script_after_a_quick_restart_runs_once_and_then_answers() -> None:
    """After a restart every pooled connection is dead. redis-py 8.1 sends a script on
    one and fails that call (the script never reached the new server); 8.2 finds the
    dead connection as the pool hands it out and sends the script on a new one. Either
    way a single-use record is used once: a code put on the new server is consumed by
    exactly one call, and the store answers by the second call at the latest."""
    port = unused_port()
    with tempfile.TemporaryDirectory() as workdir:
        store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0", prefix=PREFIX)
        other = RedisStore.from_url(f"redis://127.0.0.1:{port}/0", prefix=PREFIX)
        try:
            with redis_on(port, workdir):
                assert await store.consume("code", "c0") is None
            with redis_on(port, workdir):
                await other.upsert("code", "c1", {"n": 1}, 60)
                outcomes: list[object] = []
                for _ in range(2):
                    try:
                        outcomes.append(await store.consume("code", "c1"))
                    except StoreError:
                        outcomes.append("failed")
                assert outcomes in ([({"n": 1}, True), ({"n": 1}, False)],
                                    ["failed", ({"n": 1}, True)]), outcomes
        finally:
            await store.close()
            await other.close()


async def test_an_advance_with_a_reuse_window_is_resent_on_a_dead_connection() -> None:
    """Sent twice, it answers as once (``"repeated"`` with its own memo), so the dead
    connection of a quick restart costs no error, whether redis-py sends on it (8.1) or
    replaces it first (8.2)."""
    port = unused_port()
    with tempfile.TemporaryDirectory() as workdir:
        store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0", prefix=PREFIX)
        try:
            with redis_on(port, workdir):
                await store.upsert("grant", "g", {"n": 1}, 60, version="v1")
            with redis_on(port, workdir):  # a new server: nothing kept
                assert await store.advance("grant", "g", "v1", "v2", memo="m",
                                           reuse_for=5) is None
                await store.upsert("grant", "g", {"n": 1}, 60, version="v1")
                advanced = await store.advance("grant", "g", "v1", "v2", memo="m", reuse_for=5)
                assert advanced is not None
                assert advanced.outcome == "advanced"
        finally:
            await store.close()


async def test_a_frozen_redis_fails_calls_within_the_timeout_and_recovers() -> None:
    with started_redis_server() as redis:
        store = RedisStore.from_url(redis.url, prefix=PREFIX, timeout=0.3)
        try:
            await store.upsert("session", "s1", {"n": 1}, 60)
            os.kill(redis.process.pid, signal.SIGSTOP)
            try:
                # well before the 5 s an unconfigured client waited, and never a hang
                with pytest.raises(StoreError):
                    await asyncio.wait_for(store.find("session", "s1"), 3)
            finally:
                os.kill(redis.process.pid, signal.SIGCONT)
            await answered(store)  # by itself, once Redis answers again
            assert await store.find("session", "s1") == {"n": 1}
        finally:
            await store.close()


async def test_after_a_timeout_calls_fail_unsent_until_the_window_passes() -> None:
    """The circuit: a frozen Redis costs one timeout per window, not one per call."""
    with started_redis_server() as redis:
        store = RedisStore.from_url(redis.url, prefix=PREFIX, timeout=0.3, circuit_open=1.0)
        try:
            assert await store.find("session", "s1") is None
            os.kill(redis.process.pid, signal.SIGSTOP)
            try:
                with pytest.raises(StoreError, match="TimeoutError"):
                    await store.find("session", "s1")
                with pytest.raises(StoreError, match="circuit open"):  # not sent
                    await store.upsert("session", "s2", {"n": 2}, 60)
            finally:
                os.kill(redis.process.pid, signal.SIGCONT)
            await answered(store)  # open for a second, then the store is asked again
            await store.upsert("session", "s2", {"n": 2}, 60)
            assert await store.find("session", "s2") == {"n": 2}
        finally:
            await store.close()
