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
machine) is shared with ``bench.token``.

``--ops on,off`` runs, per store, two servers side by side — with what operators watch
(metrics) and without — their rounds interleaved, and prints the hop throughput of the
first ÷ the second (target ≥ 0.95).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    import os

    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.execv(sys.executable, [sys.executable, "-m", "bench.sso", *sys.argv[1:]])  # noqa: S606

import argparse
import asyncio
import contextlib
import secrets
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from bench.proxy import ops_modes
from bench.token import (
    TOKEN_PATH,
    Combination,
    CpuSnapshot,
    CpuUse,
    Options,
    Round,
    ServerProcess,
    _authorize_url,
    _code_from,
    _location,
    _pkce,
    delete_prefixed,
    login,
    machine_line,
    redis_pid,
    round_line,
    run_round,
    sigterm_as_interrupt,
    table,
    wait_for_quiet,
)


async def run_hops(browsers: Sequence[aiohttp.ClientSession], server: ServerProcess, *,
                   alg: str, warmup: float, duration: float,
                   redis_pid: int | None) -> Round:
    """Every browser hops to the RP silently, back to back; count what completes."""
    result = Round("hop")
    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + duration
    headers = {"Authorization": server.basic_auth(alg)}

    async def user(index: int, browser: aiohttp.ClientSession) -> None:
        while (sent := time.perf_counter()) < window_end:
            verifier, challenge = _pkce()
            try:
                async with browser.get(_authorize_url(server, alg, challenge),
                                       allow_redirects=False) as resp:
                    code = _code_from(server, _location(resp, 302))
                form = {"grant_type": "authorization_code", "code": code,
                        "redirect_uri": server.redirect_uri, "code_verifier": verifier}
                async with browser.post(server.base + TOKEN_PATH, data=form,
                                        headers=headers) as resp:
                    status, body = resp.status, await resp.json()
            except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
                result.errors.append(f"user {index}: {type(exc).__name__}: {exc}")
                return
            done = time.perf_counter()
            if status != 200 or "id_token" not in body:
                result.errors.append(f"user {index}: HTTP {status}: {str(body)[:200]}")
                return
            if sent >= window_start and done <= window_end:
                result.completed += 1
                result.latencies.append(done - sent)

    async def meter() -> None:
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        first = CpuSnapshot.take(server.pid, redis_pid)
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        result.cpu = CpuUse.between(first, CpuSnapshot.take(server.pid, redis_pid))

    await asyncio.gather(meter(), *(user(i, b) for i, b in enumerate(browsers)))
    return result


def label(server: ServerProcess, options: Options) -> str:
    """The table's store column: the store, and with ``--ops on,off`` which server."""
    return server.store if options.ops == ("on",) else f"{server.store}, ops {server.ops}"


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
                for server in servers:
                    for target in ("floor", "hop"):
                        await wait_for_quiet(server.pid, redis, limit=options.quiet,
                                             patience=options.patience)
                        if target == "floor":
                            result = await run_round(
                                http, server, target="floor", alg=alg, tokens=floor_tokens,
                                warmup=options.warmup, duration=options.duration,
                                redis_pid=redis)
                        else:
                            result = await run_hops(
                                browsers[server.port], server, alg=alg,
                                warmup=options.warmup, duration=options.duration,
                                redis_pid=redis)
                        print(round_line(server.store, alg, number, result)
                              + ("" if options.ops == ("on",) else f"  (ops {server.ops})"),
                              file=sys.stderr, flush=True)
                        for error in result.errors[:5]:
                            print(f"  !! {error}", file=sys.stderr, flush=True)
                        combos[server.port].rounds.append(result)
            results.extend(combos.values())
        return results, info
    finally:
        await http.close()
        for sessions in browsers.values():
            for browser in sessions:
                await browser.close()


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.sso",
                                     description="Silent SSO hops per second, against a floor.")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stores", default="redis", help="default redis (memory also works)")
    parser.add_argument("--algs", default="RS256,ES256")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--patience", type=float, default=60.0)
    parser.add_argument("--ops", default="on",
                        help="on, off, or on,off: servers with and without metrics, side by "
                             "side (default on)")
    args = parser.parse_args(argv)
    stores = tuple(s.strip() for s in args.stores.split(",") if s.strip())
    algs = tuple(a.strip().upper() for a in args.algs.split(",") if a.strip())
    if not stores or set(stores) - {"memory", "redis"}:
        parser.error("--stores: a comma-separated list of memory, redis")
    if not algs or set(algs) - {"RS256", "ES256"}:
        parser.error("--algs: a comma-separated list of RS256, ES256")
    return Options(duration=args.duration, warmup=args.warmup, rounds=args.rounds,
                   concurrency=args.concurrency, stores=stores, algs=algs,
                   redis_url=args.redis_url, quiet=0.25, patience=args.patience, noisy=0.3,
                   retries=0, ops=ops_modes(parser, args.ops))


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    pid_of_redis = redis_pid(options.redis_url) if "redis" in options.stores else None
    prefix = f"roambench:{secrets.token_hex(4)}:"
    print(f"command: python -m bench.sso {' '.join(sys.argv[1:] if argv is None else argv)}",
          file=sys.stderr, flush=True)
    results: list[Combination] = []
    info: dict[str, Any] = {}
    with sigterm_as_interrupt():
        for store in options.stores:
            try:
                with contextlib.ExitStack() as stack:
                    servers = [stack.enter_context(ServerProcess(
                        store, redis_url=options.redis_url, prefix=prefix, ops=ops))
                        for ops in options.ops]
                    combos, info = asyncio.run(bench_store(
                        servers, options, pid_of_redis if store == "redis" else None))
                    results.extend(combos)
            finally:
                if store == "redis":
                    delete_prefixed(options.redis_url, prefix)
    print(machine_line(info))
    print(table(results, target="hop", label="SSO hop"))
    if len(options.ops) == 2:
        for first, second in zip(results[::2], results[1::2], strict=True):
            print(f"{first.alg}: hop throughput {first.store} ÷ {second.store} "
                  f"{first.rate('hop') / second.rate('hop'):.3f} (target ≥ 0.95 for on ÷ off);"
                  f" server CPU ms/hop {first.cpu_ms('hop'):.2f} / {second.cpu_ms('hop'):.2f}")
    return 1 if any(c.errors() for c in results) else 0


if __name__ == "__main__":
    sys.exit(main())
