"""What metrics, health checks and the audit trail cost a silent SSO hop: two gateways,
ops on and off, measured at the same time.

Run from the repository root::

    python -m bench.ops_cost [--rate 80] [--rounds 15] [--duration 6] [--target hop|floor]
                             [--audit file|postgresql] [--dsn postgresql://…/test]

``bench/sso.py --ops on,off`` runs the two servers one after the other, round by round;
on a shared virtual machine the CPU a request costs swings by 2× from one round to the
next (docs/performance.md), twenty times the 5 % this is meant to see. Here both servers
run at once and take the same paced load — ``--rate`` hops a second each, open loop,
below what either can serve — from one client, so they see the same machine in the same
second. Over each window, a server's CPU seconds (``/proc``, all its threads: the audit
writer's included) ÷ the hops it served is its CPU per hop; the round's figure is off's ÷
on's, the throughput a one-worker server, CPU-bound at saturation, serves with ops on as
a share of without (target ≥ 0.95). The rounds' median is printed with their range.

``--sides off,off`` (or ``on,on``) is the control: two alike gateways, whose ratio
shows what the method itself can tell apart (about ±2 % here).
``--target floor`` paces ``/floor/token`` instead (no audit event, no store): what ops
cost a request that does not use them. ``--audit postgresql`` has the "on" gateway write
its trail to PostgreSQL (``--dsn``; a schema of its own, dropped afterwards), production's
sink, instead of the demo's file. ``ROAMBENCH_OFF_PARTS`` picks what "off" turns off
(``bench/_server.py``).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    import os

    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.execv(sys.executable, [sys.executable, "-m", "bench.ops_cost", *sys.argv[1:]])  # noqa: S606

import argparse
import asyncio
import os
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import aiohttp

from bench._server import AUDIT_DSN_ENV, drop_audit_schema, off_parts
from bench.flows import login
from bench.machine import CpuSnapshot, CpuUse, machine_line, process_cpu
from bench.processes import ServerProcess, per_store, sigterm_as_interrupt
from bench.sso import hop

ALG = "ES256"


@dataclass
class Side:
    """One gateway and what it did in the current window."""

    server: ServerProcess
    browsers: list[aiohttp.ClientSession]
    done: int = 0
    errors: list[str] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # per round: server CPU ms per request

    def step(self, target: str, http: aiohttp.ClientSession, index: int
             ) -> Callable[[], Awaitable[None]]:
        if target == "hop":
            browser = self.browsers[index % len(self.browsers)]
            return lambda: hop(browser, self.server, ALG)
        return lambda: floor(http, self.server)


async def floor(http: aiohttp.ClientSession, server: ServerProcess) -> None:
    async with http.post(server.base + "/floor/token",
                         data={"grant_type": "refresh_token",
                               "refresh_token": secrets.token_urlsafe(32)},
                         headers={"Authorization": server.basic_auth(ALG)}) as resp:
        if resp.status != 200:
            raise RuntimeError(f"/floor/token answered {resp.status}")
        await resp.read()


async def paced(sides: Sequence[Side], target: str, http: aiohttp.ClientSession, *,
                rate: float, seconds: float) -> None:
    """``rate`` requests a second to each side, on a fixed schedule, for ``seconds``."""
    tasks: set[asyncio.Task[None]] = set()

    async def one(side: Side, step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
            side.done += 1
        except Exception as error:  # counted and shown, never hidden
            side.errors.append(f"{type(error).__name__}: {error}")

    start = time.perf_counter()
    for index in range(int(rate * seconds)):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        # which side is sent to first alternates: the first costs its server ~13 % more
        # CPU a request on this machine (an A/A run of two identical servers shows it)
        for side in (sides if index % 2 else sides[::-1]):
            task = asyncio.create_task(one(side, side.step(target, http, index)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks)


async def looped(sides: Sequence[Side], target: str, http: aiohttp.ClientSession, *,
                 users: int, seconds: float) -> None:
    """``users`` requests at a time to each side, back to back, for ``seconds``: both
    servers saturated at once, sharing the machine."""
    deadline = time.perf_counter() + seconds

    async def user(side: Side, index: int) -> None:
        step = side.step(target, http, index)
        while time.perf_counter() < deadline:
            try:
                await step()
                side.done += 1
            except Exception as error:  # counted and shown, never hidden
                side.errors.append(f"{type(error).__name__}: {error}")

    await asyncio.gather(*(user(side, index) for index in range(users) for side in
                           (sides if index % 2 else sides[::-1])))


async def load(sides: Sequence[Side], options: argparse.Namespace,
               http: aiohttp.ClientSession, seconds: float) -> None:
    if options.rate > 0:
        await paced(sides, options.target, http, rate=options.rate, seconds=seconds)
    else:
        await looped(sides, options.target, http, users=options.users, seconds=seconds)


async def measure(servers: Sequence[ServerProcess], options: argparse.Namespace,
                  redis_pid: int | None) -> tuple[list[Side], dict[str, object]]:
    timeout = aiohttp.ClientTimeout(total=30)
    http = aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar())
    sides = [Side(server, [aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                                 timeout=timeout) for _ in range(8)])
             for server in servers]
    try:
        info: dict[str, object] = {}
        for side in sides:
            info = await side.server.wait_ready(http)
            for browser in side.browsers:
                await login(browser, side.server, ALG)
        await load(sides, options, http, options.warmup)
        for number in range(1, options.rounds + 1):
            for side in sides:
                side.done = 0
            before = [process_cpu(side.server.pid) for side in sides]
            machine = CpuSnapshot.take(sides[0].server.pid, redis_pid)
            await load(sides, options, http, options.duration)
            use = CpuUse.between(machine, CpuSnapshot.take(sides[0].server.pid, redis_pid))
            for side, cpu in zip(sides, before, strict=True):
                spent = process_cpu(side.server.pid) - cpu
                side.cpu_ms.append(spent / max(side.done, 1) * 1000)
            on, off = sides[0].cpu_ms[-1], sides[1].cpu_ms[-1]
            print(f"  round {number}: server CPU ms/{options.target} {options.sides[0]} "
                  f"{on:.3f}, {options.sides[1]} {off:.3f}: second ÷ first {off / on:.3f}"
                  f"  (served {sides[0].done} / "
                  f"{sides[1].done}; others' CPU {use.others:.0%})", file=sys.stderr,
                  flush=True)
        return sides, info
    finally:
        await http.close()
        for side in sides:
            for browser in side.browsers:
                await browser.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ops_cost",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=80.0,
                        help="requests a second to each server (default 80); 0: as many as "
                             "--users back to back get, both servers saturated at once")
    parser.add_argument("--users", type=int, default=8,
                        help="with --rate 0: requests at a time to each server")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per round")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--target", choices=("hop", "floor"), default="hop")
    parser.add_argument("--audit", choices=("file", "postgresql"), default="file",
                        help="the 'on' gateway's audit sink (default file, the demo's)")
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--sides", default="on,off",
                        choices=("on,off", "off,on", "off,off", "on,on"),
                        help="the two gateways: on,off (default), off,on (the same, the "
                             "other started first), or an A/A control of two alike, which "
                             "shows what the method itself can tell apart")
    options = parser.parse_args(argv)
    options.sides = tuple(options.sides.split(","))
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    prefix = f"roambench:{secrets.token_hex(4)}:"
    print(f"command: python -m bench.ops_cost {' '.join(sys.argv[1:] if argv is None else argv)}"
          f"  (off: {','.join(sorted(off_parts()))})", file=sys.stderr, flush=True)
    sink = {AUDIT_DSN_ENV: options.dsn} if options.audit == "postgresql" else {}
    ports: list[int] = []  # the servers', whose PostgreSQL schemas go once they stopped

    def bench(servers: Sequence[ServerProcess], redis: int | None
              ) -> Coroutine[Any, Any, tuple[list[Side], dict[str, object]]]:
        ports.extend(server.port for server in servers)
        return measure(servers, options, redis)

    with mock.patch.dict(os.environ, sink), sigterm_as_interrupt():
        try:
            results, info = per_store(["redis"], options.redis_url, prefix, bench,
                                      ops=options.sides)
        finally:
            for port in ports:
                drop_audit_schema(port)
    on, off = results  # the first and second of --sides
    ratios = sorted(b / a for a, b in zip(on.cpu_ms, off.cpu_ms, strict=True))
    print(machine_line(info))
    pace = f"{options.rate:g}/s each" if options.rate > 0 else f"{options.users} users each"
    first, second = options.sides
    print(f"{options.target} at {pace}, {options.rounds} rounds of "
          f"{options.duration:g} s, audit sink {options.audit}: server CPU ms/"
          f"{options.target} {first} {statistics.median(on.cpu_ms):.3f}, {second} "
          f"{statistics.median(off.cpu_ms):.3f}; {second} ÷ {first}, round by round "
          f"{statistics.median(ratios):.3f} (median; {ratios[0]:.3f}–{ratios[-1]:.3f}); "
          f"target ≥ 0.95")
    errors = on.errors + off.errors
    for error in sorted(set(errors))[:5]:
        print(f"  error: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
