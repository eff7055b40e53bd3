"""The gateway's server process of a bench, and the Redis it may use.

``ServerProcess`` runs ``bench/_server.py`` (the real app plus the floor route) in a child
process; ``per_store`` runs a bench against one such process per store, removes the keys
a Redis run wrote, and stops the child whatever happens.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import redis

# below the kernel's ephemeral range, never one handed out twice: a port from bind(0) can
# be taken by an outbound connection before the server binds it
from tests.support.servers import free_port

__all__ = ["ServerProcess", "delete_prefixed", "free_port", "per_store", "redis_pid",
           "sigterm_as_interrupt", "stop"]

ROOT = Path(__file__).resolve().parent.parent
SECRET_ENV = "ROAMBENCH_CLIENT_SECRET"  # how bench/_server.py learns the clients' secret


def audit_file(port: int) -> Path:
    """Where the server on ``port`` keeps its audit trail when it is a file (the demo's
    sink; bench/_server.py); removed, with its head and lock, once the server stopped."""
    return Path(tempfile.gettempdir()) / f"roam-bench-audit-{port}.jsonl"


def remove_audit_file(port: int) -> None:
    path = audit_file(port)
    for leftover in (path, path.with_name(path.name + ".head"),
                     path.with_name(path.name + ".lock")):
        leftover.unlink(missing_ok=True)


def stop(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 10 s; nothing if it is not running."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class ServerProcess:
    """``python -m bench._server`` in a child process; always stopped on exit."""

    def __init__(self, store: str, *, redis_url: str, prefix: str, ops: str = "on",
                 secret: str | None = None) -> None:
        self.store = store
        self.ops = ops  # "off": the gateway without metrics (bench/_server.py --ops)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # the bench clients' secret, this run only
        self.secret = secret or secrets.token_urlsafe(32)
        self.clients: dict[str, str] = {}  # alg -> client_id, from /bench/info
        self.redirect_uri = ""
        self.command = [
            sys.executable, "-m", "bench._server", "--store", store,
            "--redis-url", redis_url, "--prefix", prefix, "--port", str(self.port),
        ] + (["--ops", ops] if ops != "on" else [])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> ServerProcess:
        env = {**os.environ, SECRET_ENV: self.secret}
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=env)  # noqa: S603
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        process, self.process = self.process, None
        stop(process)
        if process is not None:
            remove_audit_file(self.port)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def wait_ready(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        """Wait for ``/healthz``; returns ``/bench/info`` (what the server really runs)."""
        deadline = time.monotonic() + 30
        while True:
            if not self.alive():
                raise RuntimeError(f"the {self.store} server exited while starting")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(self.base + "/healthz") as resp:
                    if resp.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {self.store} server did not answer in 30 s")
            await asyncio.sleep(0.05)
        async with http.get(self.base + "/bench/info") as resp:
            info: dict[str, Any] = await resp.json()
        self.clients = dict(info["clients"])
        self.redirect_uri = str(info["redirect_uri"])
        return info

    def basic_auth(self, alg: str) -> str:
        raw = f"{self.clients[alg]}:{self.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def delete_prefixed(url: str, prefix: str) -> int:
    """Remove this run's keys (and only them) from Redis."""
    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(client.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(client.delete(*batch))
    finally:
        client.close()
    return deleted


def redis_pid(url: str) -> int | None:
    """The redis-server's pid if it runs on this machine (to show its CPU), else None."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        server_info = client.info("server")
    except redis.RedisError as exc:
        raise SystemExit(f"redis at {url} does not answer ({exc}); pass --redis-url "
                         "or leave redis out of --stores") from None
    finally:
        client.close()
    host = urlsplit(url).hostname or ""
    pid = server_info.get("process_id")
    local = host in ("127.0.0.1", "localhost", "::1") or url.startswith("unix:")
    return int(pid) if local and isinstance(pid, int) and os.path.exists(f"/proc/{pid}") \
        else None


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the server child is stopped and keys removed."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)



Bench = Callable[[list[ServerProcess], int | None],
                 Coroutine[Any, Any, tuple[list[Any], dict[str, Any]]]]
"""A bench against the server processes of one store (and Redis's pid, if it uses a local
Redis): its results and a server's ``/bench/info``."""


def per_store(stores: Sequence[str], redis_url: str, prefix: str, bench: Bench, *,
              ops: Sequence[str] = ("on",), secret: str | None = None,
              server_args: Sequence[str] = ()) -> tuple[list[Any], dict[str, Any]]:
    """``bench`` against the server processes of each store in turn (one per ``ops``
    mode, side by side); the keys a Redis run wrote (under ``prefix``) are removed after
    it, and the servers stopped however it ends."""
    pid_of_redis = redis_pid(redis_url) if "redis" in stores else None
    results: list[Any] = []
    info: dict[str, Any] = {}
    for store in stores:
        try:
            with contextlib.ExitStack() as stack:
                servers = []
                for mode in ops:
                    server = ServerProcess(store, redis_url=redis_url, prefix=prefix,
                                           ops=mode, secret=secret)
                    server.command += server_args
                    servers.append(stack.enter_context(server))
                found, info = asyncio.run(
                    bench(servers, pid_of_redis if store == "redis" else None))
                results.extend(found)
        finally:
            if store == "redis":
                removed = delete_prefixed(redis_url, prefix)
                print(f"  removed {removed} redis keys under {prefix}", file=sys.stderr)
    return results, info
