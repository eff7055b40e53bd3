"""Token introspection (RFC 7662) per second on one gateway process, against the floor.

Run from the repository root::

    python -m bench.introspect [--rounds 4] [--duration 5] [--warmup 1] [--users 16]
                               [--store redis|memory] [--redis-url redis://127.0.0.1:6379/0]

A resource server (``bench-api`` of ``bench/_server.py``: ``resource_server = true``,
``client_secret_basic``) posts ``token=…`` to ``/introspect`` back to back from
``--users`` connections: the JWT access token (``token_type_hint=access_token``) and the
opaque refresh token (``refresh_token``) of one real login, which must answer
``"active": true`` every time. The floor (``/floor/token`` on the same process: a form
parse and two signatures, bench/_server.py) runs in the same rounds, alternating, as the
baseline of this machine at this moment. The table gives calls a second and the server's
CPU per call (``/proc``, the whole process); issue 15's target is ≥ 5 000 calls a second
per core, ≤ 0.2 ms of CPU per call.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    import os

    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.execv(sys.executable, [sys.executable, "-m", "bench.introspect", *sys.argv[1:]])  # noqa: S606

import argparse
import asyncio
import base64
import functools
import json
import secrets
import statistics
from collections.abc import Sequence

import aiohttp

from bench.flows import TOKEN_PATH, login
from bench.machine import CpuSnapshot, machine_line
from bench.processes import ServerProcess, delete_prefixed, redis_pid
from bench.rounds import Round, Step, drive

ALG = "ES256"
FLOOR_PATH = "/floor/token"


async def tokens_of_a_login(server: ServerProcess) -> tuple[str, str]:
    """A real login's JWT access token and its (rotated once) opaque refresh token."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        refresh = await login(browser, server, ALG)
        async with browser.post(server.base + TOKEN_PATH, headers={
                "Authorization": server.basic_auth(ALG)},
                data={"grant_type": "refresh_token", "refresh_token": refresh}) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"refresh failed: {resp.status} {body}")
    return str(body["access_token"]), str(body["refresh_token"])


def introspector(http: aiohttp.ClientSession, url: str, auth: str, token: str,
                 hint: str) -> Step:
    body = f"token={token}&token_type_hint={hint}".encode()
    headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}

    async def step() -> None:
        async with http.post(url, data=body, headers=headers) as resp:
            status, payload = resp.status, await resp.read()
        if status != 200 or json.loads(payload).get("active") is not True:
            raise RuntimeError(f"HTTP {status}: {payload[:200]!r}")
    return step


def floor_step(http: aiohttp.ClientSession, url: str, auth: str) -> Step:
    body = b"grant_type=refresh_token&refresh_token=x"
    headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}

    async def step() -> None:
        async with http.post(url, data=body, headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"floor HTTP {resp.status}")
    return step


async def run(options: argparse.Namespace) -> int:
    prefix = f"roambench:{secrets.token_hex(4)}:"
    redis = redis_pid(options.redis_url) if options.store == "redis" else None
    results: dict[str, list[Round]] = {"floor": [], "access_token": [], "refresh_token": []}
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=options.users),
                                 cookie_jar=aiohttp.DummyCookieJar())
    try:
        with ServerProcess(options.store, redis_url=options.redis_url, prefix=prefix) as server:
            info = await server.wait_ready(http)
            access, refresh = await tokens_of_a_login(server)
            api = base64.b64encode(f"{info['resource_server']}:{server.secret}".encode())
            auth = "Basic " + api.decode()
            steps = {
                "floor": floor_step(http, server.base + FLOOR_PATH, server.basic_auth(ALG)),
                "access_token": introspector(http, server.base + "/introspect", auth, access,
                                             "access_token"),
                "refresh_token": introspector(http, server.base + "/introspect", auth,
                                              refresh, "refresh_token"),
            }
            for number in range(1, options.rounds + 1):
                order = list(steps)
                if number % 2 == 0:
                    order.reverse()
                for target in order:
                    result = await drive(
                        Round(target), [steps[target]] * options.users,
                        warmup=options.warmup, duration=options.duration,
                        snapshot=functools.partial(CpuSnapshot.take, server.pid, redis))
                    if result.errors:
                        raise SystemExit(f"{target}: {result.errors[0]}")
                    results[target].append(result)
                    print(f"  round {number} {target:13}: {result.rate:7.0f} calls/s "
                          f"{result.cpu_ms():.3f} ms CPU/call", flush=True)
    finally:
        await http.close()
        if options.store == "redis":
            delete_prefixed(options.redis_url, prefix)
    print(machine_line(info))
    print(f"| target, store {options.store} | calls/s (median) | server CPU ms/call | "
          "calls/s per core (1000 ÷ CPU ms) | ÷ floor (calls/s) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    floor_rate = statistics.median(r.rate for r in results["floor"])
    for target, rounds in results.items():
        rate = statistics.median(r.rate for r in rounds)
        cpu = statistics.median(r.cpu_ms() for r in rounds)
        print(f"| {target} | {rate:.0f} | {cpu:.3f} | {1000 / cpu:.0f} | "
              f"{rate / floor_rate:.2f} |")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.introspect", description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--store", choices=("redis", "memory"), default="redis")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
