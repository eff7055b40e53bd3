"""The silent SSO hop per second, against the token benchmark's floor, in one run.

Run from the repository root::

    python -m bench.sso [--duration 10] [--concurrency 16] [--stores redis] [--algs RS256,ES256]
                        [--ops on,off]

A hop is what a citizen's browser and a second RP do when the citizen, already logged in
at the gateway, opens another city's system: ``GET /authorize`` with the session cookie
(answered at once with a code, no page), then the RP's ``POST /token`` redeeming the code
with PKCE. Each concurrent user is a browser of its own (its own cookie jar and gateway
session, logged in once through the login page), looping hops back to back.

The floor is ``bench/token.py``'s: ``POST /floor/token`` on the same server process, which
only parses a form and signs the same two JWTs. It is loaded in the same run, alternating
with the hop rounds. A hop is two HTTP requests and the floor one, so the ratio printed is
hops/s ÷ floor requests/s; the gap to 0.5 is what the hop costs beyond two bare requests.
Server and machine plumbing (the child process, CPU accounting, waiting for a quiet
machine, rounds) is shared with the other benches (``bench/processes.py``,
``bench/machine.py``, ``bench/rounds.py``); ``hop`` is ``bench/miniprogram.py``'s too.

``--ops on,off`` runs, per store, two servers side by side — with what operators watch
(metrics, active health checks, the audit trail) and without — their rounds interleaved,
which of them goes first alternating from round to round (with the same one always first
it was always the slower, by more than the parts cost), and prints the hop throughput of
the first ÷ the second (target ≥ 0.95).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    import os

    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.execv(sys.executable, [sys.executable, "-m", "bench.sso", *sys.argv[1:]])  # noqa: S606

import dataclasses
import functools
import secrets
import statistics
from collections.abc import Sequence
from typing import Any

import aiohttp

from bench.flows import authorize_url, code_from, location, login, pkce, redeem
from bench.machine import CpuSnapshot, machine_line
from bench.processes import ServerProcess, per_store, sigterm_as_interrupt
from bench.proxy import ops_modes
from bench.rounds import (
    Combination,
    Options,
    Round,
    arguments,
    drive,
    measure_quietly,
    options_from,
    round_line,
    table,
)
from bench.token import run_round


async def hop(browser: aiohttp.ClientSession, server: ServerProcess, alg: str) -> None:
    """One silent hop: ``/authorize`` with the browser's session cookie answers with a code
    at once, which the RP redeems at ``/token`` with PKCE; ``RuntimeError`` otherwise."""
    verifier, challenge = pkce()
    async with browser.get(authorize_url(server, alg, challenge),
                           allow_redirects=False) as resp:
        code = code_from(server, location(resp, 302))
    await redeem(browser, server, alg, code, verifier)


async def run_hops(browsers: Sequence[aiohttp.ClientSession], server: ServerProcess, *,
                   alg: str, warmup: float, duration: float,
                   redis_pid: int | None, redis_url: str | None = None,
                   rate: float = 0.0) -> Round:
    """Every browser hops to the RP silently, back to back; count what completes (and,
    with ``redis_url``, the Redis commands they cost)."""
    return await drive(Round("hop"), [functools.partial(hop, b, server, alg) for b in browsers],
                       warmup=warmup, duration=duration, rate=rate,
                       snapshot=lambda: CpuSnapshot.take(server.pid, redis_pid,
                                                         redis_url=redis_url))


def label(server: ServerProcess, options: Options) -> str:
    """The table's store column: the store, and with ``--ops on,off`` which server."""
    return server.store if options.ops == ("on",) else f"{server.store}, ops {server.ops}"


def line(server: ServerProcess, options: Options, alg: str, number: int, result: Round) -> str:
    return (round_line(server.store, alg, number, result)
            + ("" if options.ops == ("on",) else f"  (ops {server.ops})"))


async def bench_store(servers: Sequence[ServerProcess], options: Options,
                      redis: int | None) -> tuple[list[Combination], dict[str, Any]]:
    """Each server's floor and hop rounds, the servers' rounds interleaved."""
    timeout = aiohttp.ClientTimeout(total=30)
    browsers = {server.port: [aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                                    timeout=timeout)
                              for _ in range(options.concurrency)] for server in servers}
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=options.concurrency),
                                 timeout=timeout, cookie_jar=aiohttp.DummyCookieJar())
    try:
        info: dict[str, Any] = {}
        for server in servers:
            info = await server.wait_ready(http)
            for browser in browsers[server.port]:  # each logs in once, through the pages
                await login(browser, server, options.algs[0])
        results: list[Combination] = []
        for alg in options.algs:
            floor_tokens = [secrets.token_urlsafe(32) for _ in range(options.concurrency)]
            combos = {server.port: Combination(label(server, options), alg)
                      for server in servers}
            for number in range(1, options.rounds + 1):
                # with two servers, which goes first alternates: no side always first
                for server in (servers if number % 2 else servers[::-1]):
                    for run in (
                        functools.partial(run_round, http, server, target="floor", alg=alg,
                                          tokens=floor_tokens, warmup=options.warmup,
                                          duration=options.duration, redis_pid=redis),
                        functools.partial(run_hops, browsers[server.port], server, alg=alg,
                                          warmup=options.warmup, duration=options.duration,
                                          redis_pid=redis, rate=options.rate,
                                          redis_url=options.redis_url if redis else None),
                    ):
                        combos[server.port].rounds.append(await measure_quietly(
                            run, server=server, redis_pid=redis, options=options,
                            line=functools.partial(line, server, options, alg, number)))
            results.extend(combos.values())
        return results, info
    finally:
        await http.close()
        for sessions in browsers.values():
            for browser in sessions:
                await browser.close()


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = arguments("python -m bench.sso", "Silent SSO hops per second, against a floor.",
                       stores="redis", algs="RS256,ES256", retries=0,
                       users="concurrent browsers, each with its own session")
    parser.add_argument("--ops", default="on",
                        help="on, off, or on,off: servers with and without metrics, side by "
                             "side (default on)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes per server on its port, as roam serve "
                             "--workers (default 1); CPU per hop counts all of them")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="hops a second in all, paced (default 0: back to back): the "
                             "CPU per hop of servers under the same load, whatever their "
                             "capacity (the floor still runs back to back)")
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= 64:
        parser.error("--workers: 1 to 64")
    if args.rate < 0:
        parser.error("--rate: 0 or more")
    return dataclasses.replace(options_from(parser, args), ops=ops_modes(parser, args.ops),
                               workers=args.workers, rate=args.rate)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    prefix = f"roambench:{secrets.token_hex(4)}:"
    print(f"command: python -m bench.sso {' '.join(sys.argv[1:] if argv is None else argv)}",
          file=sys.stderr, flush=True)
    with sigterm_as_interrupt():
        results, info = per_store(options.stores, options.redis_url, prefix,
                                  lambda servers, redis: bench_store(servers, options, redis),
                                  ops=options.ops,
                                  server_args=("--workers", str(options.workers)))
    print(machine_line(info))
    print(table(results, target="hop", label="SSO hop"))
    if len(options.ops) == 2:
        for first, second in zip(results[::2], results[1::2], strict=True):
            paired = first.paired(second, "hop")
            print(f"{first.alg}: hop throughput {first.store} ÷ {second.store} "
                  f"{first.rate('hop') / second.rate('hop'):.3f} (target ≥ 0.95 for on ÷ off);"
                  f" round by round {statistics.median(paired):.3f} (median; "
                  f"{paired[0]:.3f}–{paired[-1]:.3f}); the floor's, round by round, "
                  f"{statistics.median(first.paired(second, 'floor')):.3f};"
                  f" server CPU ms/hop {first.cpu_ms('hop'):.2f} / {second.cpu_ms('hop'):.2f}")
    return 1 if any(c.errors() for c in results) else 0


if __name__ == "__main__":
    sys.exit(main())
