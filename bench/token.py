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
RP would get them: one login (``/authorize`` → ``/login`` with its CSRF cookie →
``/authorize/resume``), then one silent ``/authorize`` per user for a code, redeemed at
``/token`` with PKCE. Nothing is written to the store behind the gateway's back.

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
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    # Run as a file, bench/ would come first on sys.path and this file would stand in for
    # the standard library's ``token`` module: start again as ``python -m bench.token``.
    import os

    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.execv(sys.executable, [sys.executable, "-m", "bench.token", *sys.argv[1:]])  # noqa: S606

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import math
import os
import platform
import re
import secrets
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import aiohttp
import redis
import yarl

ROOT = Path(__file__).resolve().parent.parent
USERNAME = "13800000001"  # config/directory.toml's demo citizen 张三
PASSWORD = "Roam@2026"
TOKEN_PATH = "/token"
FLOOR_PATH = "/floor/token"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SECRET_ENV = "ROAMBENCH_CLIENT_SECRET"  # how bench/_server.py learns the clients' secret


# --- CPU accounting: the machine is shared, so show who used it ---------------------------


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all threads); 0 if it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy() -> float:
    """CPU seconds every core has spent not idle since boot (from ``/proc/stat``)."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    server: float
    client: float
    redis: float
    machine: float

    @classmethod
    def take(cls, server_pid: int, redis_pid: int | None) -> CpuSnapshot:
        return cls(time.perf_counter(), process_cpu(server_pid), time.process_time(),
                   process_cpu(redis_pid) if redis_pid else 0.0, machine_busy())


@dataclass(frozen=True)
class CpuUse:
    """Cores used (1.0 = one core busy) between two snapshots."""

    seconds: float
    server: float
    client: float
    redis: float
    others: float  # everything else on the machine: other people's work, the kernel

    @classmethod
    def between(cls, a: CpuSnapshot, b: CpuSnapshot) -> CpuUse:
        seconds = b.at - a.at
        server, client, redis_ = (b.server - a.server, b.client - a.client, b.redis - a.redis)
        others = max(0.0, b.machine - a.machine - server - client - redis_)
        return cls(seconds, server / seconds, client / seconds, redis_ / seconds,
                   others / seconds)


async def wait_for_quiet(server_pid: int, redis_pid: int | None, *, limit: float,
                         patience: float) -> float:
    """Wait (up to ``patience`` s) until others use under ``limit`` cores; returns their use."""
    started = time.monotonic()
    told = -math.inf
    while True:
        a = CpuSnapshot.take(server_pid, redis_pid)
        await asyncio.sleep(1.0)
        others = CpuUse.between(a, CpuSnapshot.take(server_pid, redis_pid)).others
        waited = time.monotonic() - started
        if others <= limit or waited >= patience:
            return others
        if waited - told >= 15:
            told = waited
            print(f"  (waiting: other processes use {others:.2f} cores)", file=sys.stderr,
                  flush=True)


# --- the server process ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m bench._server`` in a child process; always stopped on exit."""

    def __init__(self, store: str, *, redis_url: str, prefix: str, ops: str = "on") -> None:
        self.store = store
        self.ops = ops  # "off": the gateway without metrics (bench/_server.py --ops)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.secret = secrets.token_urlsafe(32)  # the bench clients' secret, this run only
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
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

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


# --- getting refresh tokens the way an RP does ------------------------------------------


def jwt_header(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    padded = segment + "=" * (-len(segment) % 4)
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return header


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _authorize_url(server: ServerProcess, alg: str, challenge: str) -> str:
    query = {
        "client_id": server.clients[alg], "response_type": "code", "scope": "openid profile",
        "redirect_uri": server.redirect_uri, "state": secrets.token_urlsafe(8),
        "code_challenge": challenge, "code_challenge_method": "S256",
    }
    return f"{server.base}/authorize?{urlencode(query)}"


def _location(resp: aiohttp.ClientResponse, expected: int) -> str:
    if resp.status != expected or "Location" not in resp.headers:
        raise RuntimeError(f"{resp.method} {resp.url.path}: expected a {expected} redirect, "
                           f"got {resp.status}")
    return resp.headers["Location"]


def _code_from(server: ServerProcess, location: str) -> str:
    if not location.startswith(server.redirect_uri + "?"):
        raise RuntimeError(f"redirected to {location!r}, not to the client")
    params = parse_qs(urlsplit(location).query)
    if "code" not in params:
        raise RuntimeError(f"no code in the redirect: {params.get('error')}")
    return params["code"][0]


async def login(browser: aiohttp.ClientSession, server: ServerProcess, alg: str) -> str:
    """Log the demo citizen in through the pages; returns the first refresh token."""
    base = server.base
    verifier, challenge = _pkce()
    url = _authorize_url(server, alg, challenge)
    async with browser.get(url, allow_redirects=False) as resp:
        login_url = urljoin(base, _location(resp, 303))
    async with browser.get(login_url) as resp:
        html = await resp.text()
        if resp.status != 200:
            raise RuntimeError(f"GET /login: {resp.status}")
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))
    form = {"csrf_token": fields["csrf_token"], "r": fields["r"],
            "username": USERNAME, "password": PASSWORD}
    async with browser.post(base + "/login", data=form, allow_redirects=False) as resp:
        resume_url = urljoin(base, _location(resp, 303))
    async with browser.get(resume_url, allow_redirects=False) as resp:
        code = _code_from(server, _location(resp, 302))
    return await redeem(browser, server, alg, code, verifier)


async def redeem(browser: aiohttp.ClientSession, server: ServerProcess, alg: str, code: str,
                 verifier: str) -> str:
    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": server.redirect_uri, "code_verifier": verifier}
    headers = {"Authorization": server.basic_auth(alg)}
    async with browser.post(server.base + TOKEN_PATH, data=form, headers=headers) as resp:
        body = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"code redemption failed: {resp.status} {body}")
    if jwt_header(body["id_token"])["alg"] != alg:
        raise RuntimeError(f"the {server.clients[alg]} ID token is not signed with {alg}")
    refresh: str = body["refresh_token"]
    return refresh


async def seed(browser: aiohttp.ClientSession, server: ServerProcess, alg: str,
               users: int) -> list[str]:
    """One refresh token per user, each of its own grant, via the HTTP flow."""
    tokens: list[str] = []
    if not browser.cookie_jar.filter_cookies(yarl.URL(server.base)).get("roam_session"):
        tokens.append(await login(browser, server, alg))
    while len(tokens) < users:
        verifier, challenge = _pkce()  # the session answers silently from here on
        url = _authorize_url(server, alg, challenge)
        async with browser.get(url, allow_redirects=False) as resp:
            code = _code_from(server, _location(resp, 302))
        tokens.append(await redeem(browser, server, alg, code, verifier))
    return tokens


# --- load ---------------------------------------------------------------------------------


@dataclass
class Round:
    target: str  # "floor" or "token"
    completed: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    cpu: CpuUse | None = None  # over the measured window

    @property
    def seconds(self) -> float:
        return self.cpu.seconds if self.cpu else 0.0

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def server_ms_per_request(self) -> float:
        """Server-process CPU per completed request (Redis's own CPU not included)."""
        if not self.cpu or not self.completed:
            return float("nan")
        return self.cpu.server * self.seconds / self.completed * 1e3


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
) -> Round:
    """Every user posts refresh grants back to back; count what completes in the window."""
    url = server.base + (FLOOR_PATH if target == "floor" else TOKEN_PATH)
    headers = {"Authorization": server.basic_auth(alg),
               "Content-Type": "application/x-www-form-urlencoded"}
    result = Round(target)
    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + duration

    async def user(index: int) -> None:
        token = tokens[index]
        while (sent := time.perf_counter()) < window_end:
            body = b"grant_type=refresh_token&refresh_token=" + token.encode()
            try:
                async with http.post(url, data=body, headers=headers) as resp:
                    status, payload = resp.status, await resp.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.errors.append(f"user {index}: {type(exc).__name__}: {exc}")
                return
            done = time.perf_counter()
            if status != 200:
                result.errors.append(f"user {index}: HTTP {status}: {payload[:200]!r}")
                return  # the chain may be spent: this user stops, loudly
            new = json.loads(payload).get("refresh_token")
            if not isinstance(new, str) or not new:
                result.errors.append(f"user {index}: 200 without a refresh_token")
                return
            token = tokens[index] = new
            if sent >= window_start and done <= window_end:
                result.completed += 1
                result.latencies.append(done - sent)

    async def meter() -> None:
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        first = CpuSnapshot.take(server.pid, redis_pid)
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        result.cpu = CpuUse.between(first, CpuSnapshot.take(server.pid, redis_pid))

    await asyncio.gather(meter(), *(user(i) for i in range(len(tokens))))
    return result


# --- reporting ----------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); NaN for no samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


@dataclass
class Combination:
    store: str
    alg: str
    rounds: list[Round] = field(default_factory=list)

    def of(self, target: str) -> list[Round]:
        return [r for r in self.rounds if r.target == target]

    def rate(self, target: str) -> float:
        return statistics.median(r.rate for r in self.of(target))

    def latencies(self, target: str) -> list[float]:
        return [x for r in self.of(target) for x in r.latencies]

    def cpu_ms(self, target: str) -> float:
        return statistics.median(r.server_ms_per_request for r in self.of(target))

    def others(self) -> float:
        return max((r.cpu.others for r in self.rounds if r.cpu), default=0.0)

    def errors(self) -> list[str]:
        return [e for r in self.rounds for e in r.errors]


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine_line(info: dict[str, Any]) -> str:
    return (f"machine: nproc={os.cpu_count()}, CPU {cpu_model()}, "
            f"Python {platform.python_version()}; server: 1 uvicorn {info.get('uvicorn')} "
            f"worker, loop={info.get('loop')}, http={info.get('http')}, "
            f"starlette {info.get('starlette')}, authlib {info.get('authlib')}, "
            f"joserfc {info.get('joserfc')}, cryptography {info.get('cryptography')}, "
            f"redis-py {info.get('redis')}; client: aiohttp {aiohttp.__version__}")


def round_line(store: str, alg: str, number: int, r: Round) -> str:
    cpu = r.cpu or CpuUse(0.0, 0.0, 0.0, 0.0, 0.0)
    redis_part = f" redis {cpu.redis:4.0%}" if store == "redis" else ""
    return (f"  {store:6} {alg} round {number} {r.target:5}: {r.rate:7.1f} req/s  "
            f"p50 {percentile(r.latencies, 50) * 1e3:5.1f} ms  "
            f"{r.server_ms_per_request:5.2f} server-CPU ms/req  CPU: server {cpu.server:4.0%} "
            f"client {cpu.client:4.0%}{redis_part} others {cpu.others:4.0%}  "
            f"errors {len(r.errors)}")


def table(results: Sequence[Combination], *, target: str = "token",
          label: str = "/token") -> str:
    """The Markdown table of docs/performance.md: ``target`` rounds against the floor."""
    lines = [
        f"| store | alg | floor req/s | {label} req/s | ratio | {label} p50 ms "
        f"| {label} p99 ms | server CPU ms/req floor / {label} | others' CPU (max) | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in results:
        floor, measured = c.rate("floor"), c.rate(target)
        lat = c.latencies(target)
        lines.append(
            f"| {c.store} | {c.alg} | {floor:.0f} | {measured:.0f} | {measured / floor:.2f} "
            f"| {percentile(lat, 50) * 1e3:.1f} | {percentile(lat, 99) * 1e3:.1f} "
            f"| {c.cpu_ms('floor'):.2f} / {c.cpu_ms(target):.2f} | {c.others():.0%} "
            f"| {len(c.errors())} |")
    return "\n".join(lines)


# --- the run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    duration: float
    warmup: float
    rounds: int
    concurrency: int
    stores: tuple[str, ...]
    algs: tuple[str, ...]
    redis_url: str
    quiet: float
    patience: float
    noisy: float
    retries: int
    ops: tuple[str, ...] = ("on",)  # bench/sso.py: one server per value, metrics on or off


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
            real_tokens = await seed(browser, server, alg, options.concurrency)
            # Floor chains: same token length, so the same request bytes.
            floor_tokens = [secrets.token_urlsafe(32) for _ in range(options.concurrency)]
            for number in range(1, options.rounds + 1):
                for target, tokens in (("floor", floor_tokens), ("token", real_tokens)):
                    for attempt in range(options.retries + 1):
                        await wait_for_quiet(server.pid, redis_pid, limit=options.quiet,
                                             patience=options.patience)
                        result = await run_round(http, server, target=target, alg=alg,
                                                 tokens=tokens, warmup=options.warmup,
                                                 duration=options.duration,
                                                 redis_pid=redis_pid)
                        print(round_line(server.store, alg, number, result), file=sys.stderr,
                              flush=True)
                        for error in result.errors[:5]:
                            print(f"  !! {error}", file=sys.stderr, flush=True)
                        if not server.alive():
                            raise RuntimeError(f"the {server.store} server died")
                        others = result.cpu.others if result.cpu else 0.0
                        if result.errors or others <= options.noisy:
                            break
                        if attempt < options.retries:
                            print(f"  (other processes used {others:.2f} cores meanwhile: "
                                  "measuring this round again)", file=sys.stderr, flush=True)
                    combo.rounds.append(result)
            results.append(combo)
        return results, info


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


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.token",
        description="Refresh-token grants per second through /token, against a floor.")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="measured seconds per round (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="unmeasured seconds before each round (default 2)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of floor and of /token, interleaved (default 3)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="concurrent users, each with its own grant (default 16)")
    parser.add_argument("--stores", default="memory,redis", help="default memory,redis")
    parser.add_argument("--algs", default="RS256,ES256", help="default RS256,ES256")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--quiet", type=float, default=0.25,
                        help="before a round, wait until other processes use fewer cores "
                             "than this (default 0.25)")
    parser.add_argument("--patience", type=float, default=60.0,
                        help="longest wait for that, in seconds, then go on (default 60)")
    parser.add_argument("--noisy", type=float, default=0.3,
                        help="a round during which other processes used more cores than "
                             "this is measured again (default 0.3)")
    parser.add_argument("--retries", type=int, default=3,
                        help="how many times a noisy round is measured again (default 3)")
    args = parser.parse_args(argv)
    stores = tuple(s.strip() for s in args.stores.split(",") if s.strip())
    algs = tuple(a.strip().upper() for a in args.algs.split(",") if a.strip())
    if not stores or set(stores) - {"memory", "redis"}:
        parser.error("--stores: a comma-separated list of memory, redis")
    if not algs or set(algs) - {"RS256", "ES256"}:
        parser.error("--algs: a comma-separated list of RS256, ES256")
    if args.duration <= 0 or args.warmup < 0 or args.rounds < 1 or args.concurrency < 1:
        parser.error("--duration > 0, --warmup >= 0, --rounds >= 1, --concurrency >= 1")
    return Options(duration=args.duration, warmup=args.warmup, rounds=args.rounds,
                   concurrency=args.concurrency, stores=stores, algs=algs,
                   redis_url=args.redis_url, quiet=args.quiet, patience=max(0, args.patience),
                   noisy=args.noisy, retries=max(0, args.retries))


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    pid_of_redis = redis_pid(options.redis_url) if "redis" in options.stores else None
    prefix = f"roambench:{secrets.token_hex(4)}:"
    command = " ".join(["python -m bench.token", *(sys.argv[1:] if argv is None else argv)])
    print(f"command: {command}", file=sys.stderr, flush=True)
    results: list[Combination] = []
    info: dict[str, Any] = {}
    try:
        with sigterm_as_interrupt():
            for store in options.stores:
                try:
                    with ServerProcess(store, redis_url=options.redis_url,
                                       prefix=prefix) as server:
                        combos, info = asyncio.run(bench_store(
                            server, options, pid_of_redis if store == "redis" else None))
                        results.extend(combos)
                finally:
                    if store == "redis":
                        removed = delete_prefixed(options.redis_url, prefix)
                        print(f"  removed {removed} redis keys under {prefix}", file=sys.stderr)
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
