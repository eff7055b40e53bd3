"""Mini-program logins and switching hops per second, beside the silent SSO hop, in one run.

Run from the repository root::

    python -m bench.miniprogram [--duration 10] [--concurrency 16] [--stores memory]
                                [--channels wechat,alipay] [--algs RS256]

Three processes besides this client (aiohttp): the gateway (``bench/_server.py``: one
uvicorn worker, its ``[channels]`` pointing at the mocks), the mock platforms
(``bench/_platforms.py``: ``demo/platforms.py``'s WeChat and Alipay gateway, one uvicorn
worker of their own) and, with ``--stores redis``, Redis. Each one's CPU is counted apart,
so the gateway's CPU per login is the gateway's alone.

Per store, ``--rounds`` times, these rounds alternate (for each channel: platform, login;
then switch, SSO hop), each with ``--concurrency`` users looping back to back:

* **platform** — the mock alone: WeChat's ``GET /sns/jscode2session`` or the Alipay
  gateway's ``alipay.system.oauth.token`` (the request signed RSA2, the answer signed),
  sent straight to the mock with a fresh code each, as the gateway sends them: what one
  login costs the platform, reported beside the logins.
* **login** — a channel login: ``POST /token`` with ``grant_type=urn:roam:params:oauth:
  grant-type:channel-code``, client ``hunan-miniapp`` (public), ``channel``, a fresh
  platform ``code`` and ``scope=openid offline_access``. The gateway reserves the code in
  its store, redeems it with the mock and answers with access, refresh and ID tokens.
* **switch** — a switching hop (无感切换), four requests: the mini-program's
  ``POST /sso/transfer-ticket`` (bearer: its access token from a channel login; ``target``:
  the RP's ``initiate_login_uri``) → ``GET`` the one-time ``transfer_url`` in a web-view
  with no cookies (a gateway session is made; 303 to the target) → the RP's silent
  ``GET /authorize`` with that session (302 with a code) → the RP's ``POST /token``
  redeeming the code with PKCE. That is the issue's "ticket → session → silent
  ``/authorize`` → code" plus the code's redemption, so that a switching hop is exactly an
  SSO hop plus the two requests that stand in for a session the browser already had.
* **SSO hop** — ``bench/sso.py``'s silent hop with the same RP client: ``/authorize`` with
  a session from a password login → code → ``/token`` with PKCE. Two requests.

Codes are minted in the mock before each round (as many phones' ``wx.login`` would give
them) and the Alipay requests of a platform round signed before it, so neither is in any
measured figure (``bench/miniapp.py``). The mini-programs' access tokens for the switch
round come from channel logins made just before it. Every answer is checked; a wrong one
is printed and makes the exit status 1. Waiting for a quiet machine and measuring a noisy
round again are as in ``bench/token.py``.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    import os

    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.execv(sys.executable, [sys.executable, "-m", "bench.miniprogram",  # noqa: S606
                              *sys.argv[1:]])

import functools
import math
import os
import secrets
import statistics
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.abc import AbstractCookieJar

from bench._platforms import CHANNELS, write_keys
from bench.flows import login
from bench.machine import CpuSnapshot, machine_line
from bench.miniapp import Platforms, Pool, channel_login, login_step, switch
from bench.processes import (
    SECRET_ENV,
    ServerProcess,
    free_port,
    per_store,
    sigterm_as_interrupt,
)
from bench.proxy import Child
from bench.rounds import (
    Combination,
    Options,
    Round,
    Step,
    alternate,
    arguments,
    drive,
    options_from,
    percentile,
)
from bench.sso import hop

WECHAT_GUESS = 15000.0  # platform calls/s assumed before the first WeChat platform round
TOP_UP = 2000  # codes minted at once when a round outruns its pool


def platforms_child(key_dir: Path, users: int, secret: str) -> Child:
    port = free_port()
    return Child("mock platforms", [
        sys.executable, "-m", "bench._platforms", "--port", str(port),
        "--key-dir", str(key_dir), "--users", str(users)],
        port=port, env={**os.environ, SECRET_ENV: secret}, probe="/healthz", body=None)


def client(connections: int, jar: AbstractCookieJar | None = None) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30),
        cookie_jar=aiohttp.DummyCookieJar() if jar is None else jar,
        connector=aiohttp.TCPConnector(limit=connections))


class Run:
    """One store's rounds: the clients, the pools' estimates and the CPU snapshot."""

    def __init__(self, server: ServerProcess, platforms: Platforms, options: Options,
                 redis: int | None, *, target: str) -> None:
        self.server, self.platforms, self.options, self.redis = server, platforms, options, redis
        self.target = target  # where the switch leads: the RP's initiate_login_uri
        # Platform calls/s to size pools by: guessed (Alipay's mock signs every answer),
        # then the fastest platform round yet.
        self.rate = {"wechat": WECHAT_GUESS, "alipay": platforms.signing_rate()}
        self.seen: dict[str, float] = {}

    def client(self) -> aiohttp.ClientSession:
        """The mini-program's (or the gateway's, to the mocks): no cookies; new each round,
        so that no connection of it has sat idle past a server's keep-alive timeout."""
        return client(self.options.concurrency)

    def snapshot(self) -> CpuSnapshot:
        return CpuSnapshot.take(self.server.pid, self.redis, self.platforms.child.pid)

    def drive(self, target: str, steps: Sequence[Step],
              process: str = "server") -> Awaitable[Round]:
        return drive(Round(target, process=process), steps, warmup=self.options.warmup,
                     duration=self.options.duration, snapshot=self.snapshot)

    def pool_size(self, channel: str) -> int:
        window = self.options.warmup + self.options.duration
        return math.ceil(self.rate[channel] * window * 1.3) + 4 * self.options.concurrency

    async def channel_round(self, channel: str, kind: str) -> Round:
        """``kind`` "platform" (the mock alone) or "login" (through the gateway)."""
        make: Callable[[int, bool], Awaitable[list[Any]]] = functools.partial(
            self.platforms.direct_requests if kind == "platform" else self.platforms.login_forms,
            channel)
        pool: Pool[Any] = Pool(make, batch=TOP_UP)
        size = self.pool_size(channel)
        await pool.fill(size)
        async with self.client() as http:
            step = (self.platforms.direct_step(http, channel, pool) if kind == "platform"
                    else login_step(http, self.server, pool))
            result = await self.drive(f"{channel} {kind}", [step] * self.options.concurrency,
                                      "platform" if kind == "platform" else "server")
        if kind == "platform":
            self.seen[channel] = self.rate[channel] = max(self.seen.get(channel, 0.0),
                                                          result.rate)
        if pool.topped_up:
            print(f"  ({size} codes were too few: topped up {pool.topped_up} times during "
                  "the round)", file=sys.stderr, flush=True)
        return result

    async def switch_round(self, webviews: Sequence[aiohttp.ClientSession], alg: str) -> Round:
        forms = await self.platforms.login_forms("wechat", len(webviews), True)
        async with self.client() as http:
            tokens = [(await channel_login(http, self.server, form))["access_token"]
                      for form in forms]  # fresh: access tokens live minutes
            steps = [functools.partial(switch, http, webview, self.server, alg=alg,
                                       token=token, target=self.target)
                     for webview, token in zip(webviews, tokens, strict=True)]
            return await self.drive("switch", steps)

    def sso_round(self, browsers: Sequence[aiohttp.ClientSession], alg: str) -> Awaitable[Round]:
        return self.drive("SSO hop", [functools.partial(hop, b, self.server, alg)
                                      for b in browsers])


async def bench_store(server: ServerProcess, child: Child, key_dir: Path, options: Options,
                      channels: Sequence[str],
                      redis: int | None) -> tuple[list[Combination], dict[str, Any]]:
    webviews = [client(1, aiohttp.CookieJar(unsafe=True)) for _ in range(options.concurrency)]
    browsers = [client(1, aiohttp.CookieJar(unsafe=True)) for _ in range(options.concurrency)]
    try:
        async with client(1) as http:
            info = await server.wait_ready(http)
            await child.wait_ready(http)
        platforms = Platforms(child, secret=server.secret, key_dir=key_dir)
        run = Run(server, platforms, options, redis, target=str(info["login_uri"]))
        for browser in browsers:  # each SSO browser logs in once, through the pages
            await login(browser, server, options.algs[0])
        results = []
        for alg in options.algs:
            combo = Combination(server.store, alg)
            rounds: list[Callable[[], Awaitable[Round]]] = [
                functools.partial(run.channel_round, channel, kind)
                for channel in channels for kind in ("platform", "login")
            ] if alg == options.algs[0] else []  # the RP's alg is not in a channel login
            rounds += [functools.partial(run.switch_round, webviews, alg),
                       functools.partial(run.sso_round, browsers, alg)]
            combo.rounds = await alternate(rounds, server=server, redis_pid=redis,
                                           options=options, alg=alg)
            results.append(combo)
        return results, info
    finally:
        for session in (*webviews, *browsers):
            await session.close()


# --- the report ---------------------------------------------------------------------------


def _median(rounds: Sequence[Round], figure: Callable[[Round], float]) -> float:
    return statistics.median(figure(r) for r in rounds) if rounds else float("nan")


def _others(rounds: Sequence[Round]) -> str:
    return f"{max((r.cpu.others for r in rounds if r.cpu), default=0.0):.0%}"


def _p(rounds: Sequence[Round], q: float) -> float:
    return percentile([x for r in rounds for x in r.latencies], q) * 1e3


def login_table(results: Sequence[Combination], channels: Sequence[str]) -> str:
    lines = [
        "| store | channel | logins/s | p50 ms | p99 ms | gateway CPU ms/login "
        "| platform CPU ms/login | platform alone calls/s | platform alone CPU ms/call "
        "| others' CPU (max) | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in results:
        for channel in channels:
            logins, alone = c.of(f"{channel} login"), c.of(f"{channel} platform")
            if not logins:
                continue
            lines.append(
                f"| {c.store} | {channel} | {_median(logins, lambda r: r.rate):.0f} "
                f"| {_p(logins, 50):.1f} | {_p(logins, 99):.1f} "
                f"| {_median(logins, Round.cpu_ms):.2f} "
                f"| {_median(logins, lambda r: r.cpu_ms('platform')):.2f} "
                f"| {_median(alone, lambda r: r.rate):.0f} "
                f"| {_median(alone, Round.cpu_ms):.2f} | {_others(logins + alone)} "
                f"| {sum(len(r.errors) for r in logins + alone)} |")
    return "\n".join(lines)


def switch_table(results: Sequence[Combination]) -> str:
    lines = [
        "| store | RP alg | switch hops/s | SSO hops/s | ratio | switch p50 / p99 ms "
        "| SSO hop p50 / p99 ms | gateway CPU ms/hop switch / SSO | ratio by CPU "
        "| others' CPU (max) | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in results:
        hops, sso = c.of("switch"), c.of("SSO hop")
        switch_rate, sso_rate = (_median(x, lambda r: r.rate) for x in (hops, sso))
        switch_cpu, sso_cpu = (_median(x, Round.cpu_ms) for x in (hops, sso))
        lines.append(
            f"| {c.store} | {c.alg} | {switch_rate:.0f} | {sso_rate:.0f} "
            f"| {switch_rate / sso_rate:.2f} | {_p(hops, 50):.1f} / {_p(hops, 99):.1f} "
            f"| {_p(sso, 50):.1f} / {_p(sso, 99):.1f} | {switch_cpu:.2f} / {sso_cpu:.2f} "
            f"| {sso_cpu / switch_cpu:.2f} | {_others(hops + sso)} "
            f"| {sum(len(r.errors) for r in hops + sso)} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> tuple[Options, tuple[str, ...]]:
    parser = arguments("python -m bench.miniprogram",
                       "Mini-program logins and switching hops per second, beside the "
                       "silent SSO hop.", stores="memory", algs="RS256",
                       users="concurrent users: mini-programs, web-views, browsers")
    parser.add_argument("--channels", default=",".join(CHANNELS),
                        help=f"default {','.join(CHANNELS)}")
    args = parser.parse_args(argv)
    channels = tuple(c.strip() for c in args.channels.split(",") if c.strip())
    if not channels or set(channels) - set(CHANNELS):
        parser.error(f"--channels: a comma-separated list of {', '.join(CHANNELS)}")
    return options_from(parser, args), channels


def main(argv: Sequence[str] | None = None) -> int:
    options, channels = parse_args(argv)
    prefix = f"roambench:{secrets.token_hex(4)}:"
    secret = secrets.token_urlsafe(32)  # the bench clients' and the WeChat AppSecret
    command = " ".join(["python -m bench.miniprogram",
                        *(sys.argv[1:] if argv is None else argv)])
    print(f"command: {command}", file=sys.stderr, flush=True)
    try:
        with sigterm_as_interrupt(), \
                tempfile.TemporaryDirectory(prefix="roambench-keys-") as tmp:
            key_dir = Path(tmp)
            write_keys(key_dir)
            with platforms_child(key_dir, options.concurrency, secret) as child:
                results, info = per_store(
                    options.stores, options.redis_url, prefix,
                    lambda servers, redis: bench_store(servers[0], child, key_dir, options,
                                                       channels, redis),
                    secret=secret, server_args=("--platforms", child.base,
                                                "--key-dir", str(key_dir)))
    except KeyboardInterrupt:
        print("interrupted: servers stopped, nothing reported", file=sys.stderr)
        return 130
    print(machine_line(info))
    print(f"concurrency {options.concurrency}, {options.rounds} rounds of "
          f"{options.warmup:g} s warm-up + {options.duration:g} s measured per target, "
          "alternating; rates and CPU are medians of rounds, latency percentiles are over "
          "every measured request")
    print(login_table(results, channels))
    print()
    print(switch_table(results))
    errors = [f"{c.store}/{c.alg}: {e}" for c in results for e in c.errors()]
    for error in errors[:20]:
        print(f"!!! {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
