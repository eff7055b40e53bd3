"""Refresh-token grants per second through the real ``/token``, against a floor.

Run from the repository root (``python bench/token.py`` restarts itself that way, since a
file named ``token.py`` first on ``sys.path`` would shadow the standard library's)::

    python -m bench.token [--duration 10] [--concurrency 16] [--stores memory,redis]
                          [--algs RS256,ES256] [--redis-url redis://127.0.0.1:6379/0]

For each store, one server process (``bench/_server.py``: one uvicorn worker serving
``gateway.app.create_app`` plus a floor route in the same Starlette app) is started and
later stopped. This process is the client: aiohttp, ``--concurrency`` users, each holding
its own refresh-token chain and posting ``grant_type=refresh_token`` with HTTP Basic client
authentication, then continuing with the refresh token it got back.

The initial refresh tokens come through the gateway's own HTTP flow, as a browser and an
RP would get them: one login per user, each in a browser of its own (``/authorize`` →
``/login`` with its CSRF cookie → ``/authorize/resume``) for a code, redeemed at
``/token`` with PKCE — one session and so one grant each (a client holds one grant per
session: a second authorization in the same session leaves the first refresh token
stale). Nothing is written to the store behind the gateway's back.

The floor, ``POST /floor/token`` on the same server, parses the form and signs the same two
JWTs with the same key ring, and nothing else: it is what a token endpoint cannot avoid
paying. It is loaded by the same client code with the same body and concurrency, so the
client's own cost is the same on both sides. Floor and ``/token`` alternate (floor, token,
floor, token, …) for ``--rounds`` rounds each; the table reports medians.

Every response must be a 200 carrying a new refresh token; anything else is counted,
printed, and makes the exit status 1. The CPU used during each measured window by the
server, this client, Redis and everything else is shown, so a client-bound or disturbed
round is visible. The machine may be shared: before each round the bench waits for other
processes to quieten down (``--quiet``, ``--patience``), and measures a round again if they
took more than ``--noisy`` cores during it (``--retries``). ``--help`` lists every option.
That plumbing, shared by every bench, is in ``bench/machine.py`` (CPU accounting),
``bench/processes.py`` (the server process, Redis) and ``bench/rounds.py`` (rounds, the
table); the browser and RP flows in ``bench/flows.py``.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    # Run as a file, bench/ would come first on sys.path and this file would stand in for
    # the standard library's ``token`` module: start again as ``python -m bench.token``.
    import os

    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.execv(sys.executable, [sys.executable, "-m", "bench.token", *sys.argv[1:]])  # noqa: S606

import functools
import json
import secrets
from collections.abc import Sequence
from typing import Any

import aiohttp

from bench.flows import TOKEN_PATH, own_grants
from bench.machine import CpuSnapshot, machine_line
from bench.processes import ServerProcess, per_store, sigterm_as_interrupt
from bench.rounds import (
    Combination,
    Options,
    Round,
    Step,
    alternate,
    arguments,
    drive,
    options_from,
    table,
)

FLOOR_PATH = "/floor/token"


async def run_round(
    http: aiohttp.ClientSession,
    server: ServerProcess,
    *,
    target: str,
    alg: str,
    tokens: list[str],
    warmup: float,
    duration: float,
    redis_pid: int | None,
    redis_url: str | None = None,
) -> Round:
    """Every user posts refresh grants back to back, each continuing its own chain;
    ``redis_url``: count the Redis commands they cost too."""
    url = server.base + (FLOOR_PATH if target == "floor" else TOKEN_PATH)
    headers = {"Authorization": server.basic_auth(alg),
               "Content-Type": "application/x-www-form-urlencoded"}

    def refresher(index: int) -> Step:
        async def step() -> None:
            body = b"grant_type=refresh_token&refresh_token=" + tokens[index].encode()
            async with http.post(url, data=body, headers=headers) as resp:
                status, payload = resp.status, await resp.read()
            if status != 200:  # the chain may be spent: this user stops, loudly
                raise RuntimeError(f"HTTP {status}: {payload[:200]!r}")
            new = json.loads(payload).get("refresh_token")
            if not isinstance(new, str) or not new:
                raise RuntimeError("200 without a refresh_token")
            tokens[index] = new
        return step

    return await drive(Round(target), [refresher(i) for i in range(len(tokens))],
                       warmup=warmup, duration=duration,
                       snapshot=lambda: CpuSnapshot.take(server.pid, redis_pid,
                                                         redis_url=redis_url))


async def bench_store(server: ServerProcess, options: Options,
                      redis_pid: int | None) -> tuple[list[Combination], dict[str, Any]]:
    timeout = aiohttp.ClientTimeout(total=30)
    jar = aiohttp.CookieJar(unsafe=True)  # cookies on 127.0.0.1, as a browser keeps them
    connector = aiohttp.TCPConnector(limit=options.concurrency)
    async with (
        aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as browser,
        aiohttp.ClientSession(connector=connector, timeout=timeout,
                              cookie_jar=aiohttp.DummyCookieJar()) as http,
    ):
        info = await server.wait_ready(browser)
        results = []
        for alg in options.algs:
            combo = Combination(server.store, alg)
            real_tokens = await own_grants(server, alg, options.concurrency)
            # Floor chains: same token length, so the same request bytes.
            floor_tokens = [secrets.token_urlsafe(32) for _ in range(options.concurrency)]
            combo.rounds = await alternate([
                functools.partial(run_round, http, server, target=target, alg=alg,
                                  tokens=tokens, warmup=options.warmup,
                                  duration=options.duration, redis_pid=redis_pid,
                                  redis_url=options.redis_url if redis_pid else None)
                for target, tokens in (("floor", floor_tokens), ("token", real_tokens))],
                server=server, redis_pid=redis_pid, options=options, alg=alg)
            results.append(combo)
        return results, info



def parse_args(argv: Sequence[str] | None) -> Options:
    parser = arguments("python -m bench.token",
                       "Refresh-token grants per second through /token, against a floor.",
                       stores="memory,redis", algs="RS256,ES256",
                       users="concurrent users, each with its own grant")
    return options_from(parser, parser.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    prefix = f"roambench:{secrets.token_hex(4)}:"
    command = " ".join(["python -m bench.token", *(sys.argv[1:] if argv is None else argv)])
    print(f"command: {command}", file=sys.stderr, flush=True)
    try:
        with sigterm_as_interrupt():
            results, info = per_store(
                options.stores, options.redis_url, prefix,
                lambda servers, redis: bench_store(servers[0], options, redis))
    except KeyboardInterrupt:
        print("interrupted: server stopped, nothing reported", file=sys.stderr)
        return 130
    print(machine_line(info))
    print(f"concurrency {options.concurrency}, {options.rounds} rounds of "
          f"{options.warmup:g} s warm-up + {options.duration:g} s measured per target, "
          "interleaved; req/s and CPU are medians of rounds, latency percentiles are over "
          "every measured request")
    print(table(results))
    errors = [f"{c.store}/{c.alg}: {e}" for c in results for e in c.errors()]
    if errors:
        print(f"\n!!! {len(errors)} FAILED REQUESTS: the figures above are not valid !!!",
              file=sys.stderr)
        for error in errors[:20]:
            print(f"!!! {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
