"""Requests per second and added latency of a proxied system, against nginx, in one run.

Run from the repository root::

    python -m bench.proxy [--duration 10] [--warmup 2] [--rounds 3] [--concurrency 16]
                          [--store memory|redis]
                          [--upstream aiohttp|asgi] [--patience 60] [--ops on,off]

Three child processes, all on loopback, all stopped on exit (also on Ctrl-C or SIGTERM):

* the upstream (``bench/_proxy_upstream.py``): every path answers ``200`` with the same
  1 KiB body; ``aiohttp.web`` by default (``--upstream asgi``: a bare ASGI app under
  uvicorn, for comparison);
* the gateway (``bench/_server.py``): one uvicorn worker serving ``gateway.app.create_app``
  with a systems file, written to a temporary directory, holding one ``signed-header``
  system whose one instance is the upstream;
* nginx (installed with ``apt-get install -y nginx`` if ``/usr/sbin/nginx`` is missing):
  ``worker_processes 1``, an ``upstream`` block with ``keepalive``, HTTP/1.1 and
  ``Connection ""`` to the upstream, no access log; config, pid and temp files in the
  temporary directory. It runs in its own session and its whole process group is killed if
  it does not stop in time, so no nginx is left behind.

This process is the client: aiohttp, ``--concurrency`` users sending the same ``GET`` back
to back to one target at a time: the upstream directly, nginx, and the gateway serving the
system on a host of its own (``Host: bench-upstream.localhost:<port>``, as production
serves every proxied system). The proxy requires a session on that host, so the bench logs
in once through the gateway's login page (as ``bench/token.py`` does), makes the hand-over
hop a browser makes (``/sso/handover`` → ``/.roam/callback``), and sends that host
session's cookie, with the same headers, to all three targets. Rounds are interleaved
(direct, nginx, gateway) × ``--rounds``; each round has ``--warmup`` unmeasured then
``--duration`` measured seconds.

``--ops on,off`` runs two gateways side by side, one with what operators watch (metrics,
active health checks, the audit trail) and one without, as two more interleaved targets,
and prints the throughput of the first ÷ the second (target ≥ 0.95): the cost of that on
the proxy's hot path (bench/_server.py's ``bench_config``).

``--store redis`` runs the gateways on Redis (``$REDIS_URL``, under a prefix of this run,
deleted after) instead of the memory store, and reports the Redis commands each proxied
request costs (``INFO stats`` over each round; the server is shared, so on a quiet one).

Reported per target: requests/s (median of rounds), p50/p99 latency over every measured
request, the latency added to the direct call (p50 and p99 differences), the ratio to nginx,
the proxy's and the upstream's CPU per request, and errors. Every response must be a 200
carrying the exact body; anything else is counted, printed, and makes the exit status 1.
The machine may be shared: the waiting and re-measuring of ``bench/token.py`` apply
(``--quiet``, ``--patience``, ``--noisy``, ``--retries``).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    import os

    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.execv(sys.executable, [sys.executable, "-m", "bench.proxy", *sys.argv[1:]])  # noqa: S606

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yarl

from bench._proxy_upstream import BODY, HEADERS_PATH
from bench.flows import login
from bench.machine import machine_busy, machine_line, process_cpu, redis_work, wait_for_quiet
from bench.processes import (
    ROOT,
    ServerProcess,
    delete_prefixed,
    free_port,
    redis_pid,
    sigterm_as_interrupt,
)
from bench.rounds import percentile

SYSTEM_ID = "bench-upstream"
SYSTEM_HOST = f"{SYSTEM_ID}.localhost"  # the system's own host (the gateway's port)
ITEM = "430000-BENCH-001"
REQUEST_PATH = "/bench/item?id=430000-0001"  # the same path and query on every target
TARGETS = ("direct", "nginx", "gateway")
NGINX = "/usr/sbin/nginx"


REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# --- child processes ----------------------------------------------------------------------


class Child:
    """A child process in its own session: stopped with its whole process group."""

    def __init__(self, name: str, command: list[str], *, port: int,
                 env: dict[str, str] | None = None, probe: str = REQUEST_PATH,
                 body: bytes | None = BODY) -> None:
        self.name = name
        self.command = command
        self.port = port
        self.env = env  # None: this process's environment
        self.probe, self.body = probe, body  # ready once GET probe answers 200 (with body)
        self.base = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def pids(self) -> list[int]:
        """The process and its direct children (nginx's worker)."""
        pids = [self.pid]
        with contextlib.suppress(OSError), \
                open(f"/proc/{self.pid}/task/{self.pid}/children") as fh:
            pids.extend(int(p) for p in fh.read().split())
        return pids

    def __enter__(self) -> Child:
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env,  # noqa: S603
                                        start_new_session=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)  # nginx: fast shutdown
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # anything left of the group
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 30
        while True:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited while starting")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(self.base + self.probe) as resp:
                    if resp.status == 200 and self.body in (None, await resp.read()):
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer in 30 s")
            await asyncio.sleep(0.05)


def upstream_child(kind: str) -> Child:
    port = free_port()
    return Child(f"upstream ({kind})", [sys.executable, "-m", "bench._proxy_upstream",
                                         "--port", str(port), "--kind", kind], port=port)


def ensure_nginx() -> str:
    """``/usr/sbin/nginx``, installed from Debian's packages if missing; returns its version."""
    if not os.path.exists(NGINX):
        if shutil.which("apt-get") is None:
            raise SystemExit(f"{NGINX} is missing and there is no apt-get to install it")
        was_running = os.path.exists("/run/nginx.pid")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"],
                        ["apt-get", "install", "-y", "--no-install-recommends", "nginx"]):
            print(f"{NGINX} is missing; running: {' '.join(command)}", file=sys.stderr,
                  flush=True)
            subprocess.run(command, check=True, env=env,  # noqa: S603
                           stdout=subprocess.DEVNULL)
        if not was_running and os.path.exists("/run/nginx.pid"):
            # The package may start the system nginx; this bench leaves no nginx behind.
            print("stopping the nginx service the package started: nginx -s stop",
                  file=sys.stderr, flush=True)
            subprocess.run([NGINX, "-s", "stop"], check=False)  # noqa: S603
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False)  # noqa: S603
    return (out.stderr or out.stdout).strip().rpartition("/")[2] or "unknown"


NGINX_CONF = """\
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream bench_upstream {{
        server 127.0.0.1:{upstream_port};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def nginx_child(tmp: Path, upstream_port: int) -> Child:
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, upstream_port=upstream_port, port=port))
    return Child("nginx", [NGINX, "-p", str(tmp), "-e", str(tmp / "nginx-error.log"),
                           "-c", str(conf), "-g", "daemon off;"], port=port)


SYSTEMS = """\
# bench/proxy.py: one signed-header system in front of the bench upstream.
[[item]]
code = "{item}"
name = "代理基准测试事项"

[[system]]
id = "{system}"
name = "代理基准测试上游"
region = "430000"
level = "province"
instances = ["http://127.0.0.1:{upstream_port}"]
connector = "signed-header"
connector_settings = {{ secret = "{secret}" }}
items = ["{item}"]
claims = ["name"]
{hosts}
"""


def write_systems(tmp: Path, upstream_port: int, *, own_host: bool = True) -> Path:
    """The bench's systems file; ``own_host=False``: no host, for path mode (``/s/<id>/``,
    as gateways before hosts were required served every system: ``bench/proxy_ab.py``)."""
    path = tmp / "systems.toml"
    hosts = f'hosts = ["{SYSTEM_HOST}"]' if own_host else ""
    path.write_text(SYSTEMS.format(item=ITEM, system=SYSTEM_ID, upstream_port=upstream_port,
                                   secret=secrets.token_urlsafe(32), hosts=hosts),
                    encoding="utf-8")
    return path


# --- CPU accounting over several processes ------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    at: float
    proxy: float  # the target's proxy: nginx (master + worker) or the gateway; 0 for direct
    upstream: float
    client: float
    watched: float  # every child of this bench, proxy or not
    machine: float

    @classmethod
    def take(cls, proxy: list[int], children: list[int]) -> Snapshot:
        return cls(time.perf_counter(), sum(process_cpu(p) for p in proxy),
                   process_cpu(children[0]), time.process_time(),
                   sum(process_cpu(p) for p in children), machine_busy())


@dataclass(frozen=True)
class Cpu:
    """Cores used (1.0 = one core busy) between two snapshots."""

    seconds: float
    proxy: float
    upstream: float
    client: float
    others: float  # not this bench's processes: other people's work, the kernel

    @classmethod
    def between(cls, a: Snapshot, b: Snapshot) -> Cpu:
        s = b.at - a.at
        client, watched = b.client - a.client, b.watched - a.watched
        others = max(0.0, b.machine - a.machine - client - watched)
        return cls(s, (b.proxy - a.proxy) / s, (b.upstream - a.upstream) / s, client / s,
                   others / s)


# --- load ---------------------------------------------------------------------------------


@dataclass
class Round:
    target: str
    completed: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    cpu: Cpu | None = None
    redis_commands: int = 0  # what Redis executed in the window (``--store redis``)

    @property
    def rate(self) -> float:
        return self.completed / self.cpu.seconds if self.cpu and self.cpu.seconds else 0.0

    def ms_per_request(self, cores: float) -> float:
        if not self.cpu or not self.completed:
            return float("nan")
        return cores * self.cpu.seconds / self.completed * 1e3


async def run_round(url: str, target: str, *, headers: dict[str, str], concurrency: int,
                    warmup: float, duration: float, proxy: list[int],
                    children: list[int], redis_url: str | None = None) -> Round:
    """Every user sends the same GET back to back; count what completes in the window."""
    result = Round(target)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     cookie_jar=aiohttp.DummyCookieJar()) as http:
        start = time.perf_counter()
        window_start, window_end = start + warmup, start + warmup + duration

        async def user(index: int) -> None:
            while (sent := time.perf_counter()) < window_end:
                try:
                    async with http.get(url, headers=headers, allow_redirects=False) as resp:
                        status, body = resp.status, await resp.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    result.errors.append(f"user {index}: {type(exc).__name__}: {exc}")
                    return
                done = time.perf_counter()
                if status != 200 or body != BODY:
                    result.errors.append(f"user {index}: HTTP {status}: {body[:200]!r}")
                    return
                if sent >= window_start and done <= window_end:
                    result.completed += 1
                    result.latencies.append(done - sent)

        async def meter() -> None:
            await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
            first, commands = Snapshot.take(proxy, children), redis_work(redis_url).commands
            await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
            result.cpu = Cpu.between(first, Snapshot.take(proxy, children))
            if redis_url:  # less this meter's own two INFO commands
                result.redis_commands = max(0, redis_work(redis_url)[0] - commands - 2)

        await asyncio.gather(meter(), *(user(i) for i in range(concurrency)))
    return result


# --- reporting ----------------------------------------------------------------------------


@dataclass
class Results:
    rounds: list[Round] = field(default_factory=list)

    def of(self, target: str) -> list[Round]:
        return [r for r in self.rounds if r.target == target]

    def rate(self, target: str) -> float:
        return statistics.median(r.rate for r in self.of(target))

    def round_ratios(self, target: str, baseline: str = "nginx") -> list[float]:
        """``target``'s rate ÷ ``baseline``'s, round by round (the two ran one after the
        other within each round)."""
        return [mine.rate / theirs.rate if theirs.rate else 0.0
                for mine, theirs in zip(self.of(target), self.of(baseline), strict=False)]

    def latency(self, target: str, q: float) -> float:
        return percentile([x for r in self.of(target) for x in r.latencies], q) * 1e3

    def cpu_ms(self, target: str, part: str) -> float:
        return statistics.median(r.ms_per_request(getattr(r.cpu, part) if r.cpu else 0.0)
                                 for r in self.of(target))

    def redis_per_request(self, target: str) -> float:
        return statistics.median(r.redis_commands / r.completed if r.completed else 0.0
                                 for r in self.of(target))

    def cores(self, target: str, part: str) -> float:
        return statistics.median(getattr(r.cpu, part) if r.cpu else 0.0
                                 for r in self.of(target))

    def others(self, target: str) -> float:
        return max((r.cpu.others for r in self.of(target) if r.cpu), default=0.0)

    def errors(self) -> list[str]:
        return [f"{r.target}: {e}" for r in self.rounds for e in r.errors]


def round_line(number: int, r: Round) -> str:
    cpu = r.cpu or Cpu(0.0, 0.0, 0.0, 0.0, 0.0)
    return (f"  round {number} {r.target:7}: {r.rate:7.1f} req/s  "
            f"p50 {percentile(r.latencies, 50) * 1e3:5.2f} ms  "
            f"p99 {percentile(r.latencies, 99) * 1e3:5.2f} ms  CPU: proxy {cpu.proxy:4.0%} "
            f"upstream {cpu.upstream:4.0%} client {cpu.client:4.0%} others {cpu.others:4.0%}  "
            f"errors {len(r.errors)}")


def gateway_target(ops: str, modes: Sequence[str]) -> str:
    """A gateway's target name: ``gateway``, or ``gateway ops=<on|off>`` when comparing."""
    return "gateway" if tuple(modes) == ("on",) else f"gateway ops={ops}"


def table(results: Results, targets: Sequence[str] = TARGETS) -> str:
    lines = [
        "| target | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms | ÷ nginx req/s "
        "| proxy CPU ms/req | upstream CPU ms/req | CPU cores proxy / upstream / client "
        "| others' CPU (max) | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    direct50, direct99 = results.latency("direct", 50), results.latency("direct", 99)
    nginx = results.rate("nginx")
    for target in targets:
        p50, p99 = results.latency(target, 50), results.latency(target, 99)
        label = {"direct": "upstream direct", "nginx": "nginx → upstream"}.get(
            target, f"{target} ({SYSTEM_HOST}) → upstream")
        added = "—" if target == "direct" else f"{p50 - direct50:+.2f}"
        added99 = "—" if target == "direct" else f"{p99 - direct99:+.2f}"
        proxy_ms = "—" if target == "direct" else f"{results.cpu_ms(target, 'proxy'):.3f}"
        lines.append(
            f"| {label} | {results.rate(target):.0f} | {p50:.2f} | {p99:.2f} | {added} "
            f"| {added99} | {results.rate(target) / nginx:.2f} | {proxy_ms} "
            f"| {results.cpu_ms(target, 'upstream'):.3f} "
            f"| {results.cores(target, 'proxy'):.2f} / {results.cores(target, 'upstream'):.2f}"
            f" / {results.cores(target, 'client'):.2f} | {results.others(target):.0%} "
            f"| {sum(len(r.errors) for r in results.of(target))} |")
    return "\n".join(lines)


# --- the run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    duration: float
    warmup: float
    rounds: int
    concurrency: int
    upstream: str
    quiet: float
    patience: float
    noisy: float
    retries: int
    ops: tuple[str, ...] = ("on",)  # one gateway per value: metrics on or off
    store: str = "memory"  # the gateways' store; "redis": REDIS_URL, a prefix of this run


async def session_cookie(gateway: ServerProcess) -> tuple[dict[str, Any], str]:
    """Start-up checks, one login and the hand-over to the system's host; returns
    ``/bench/info`` and the host session's cookie."""
    timeout = aiohttp.ClientTimeout(total=30)
    host = system_host(gateway)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     timeout=timeout) as browser:
        info = await gateway.wait_ready(browser)
        await login(browser, gateway, "ES256")
        on_host = {"Host": host, "Accept": "text/html"}
        async with browser.get(gateway.base + "/", headers=on_host,
                               allow_redirects=False) as resp:
            handover = resp.headers["Location"]
            [state] = [f"{name}={morsel.value}" for name, morsel in resp.cookies.items()
                       if name.startswith("roam_state-")]  # this hop's state cookie
        async with browser.get(handover, allow_redirects=False) as resp:
            callback = yarl.URL(resp.headers["Location"])  # on the system's host
        async with browser.get(gateway.base + str(callback.relative()), allow_redirects=False,
                               headers={**on_host, "Cookie": state}) as resp:
            cookie = resp.cookies.get("roam_host")
        if cookie is None:
            raise RuntimeError("the hand-over set no roam_host cookie")
        return info, f"roam_host={cookie.value}"


def system_host(gateway: ServerProcess) -> str:
    """The ``Host`` a browser sends to the proxied system (the gateway's port)."""
    return f"{SYSTEM_HOST}:{yarl.URL(gateway.base).port}"


async def check_targets(urls: dict[str, str], gateway: ServerProcess,
                        headers: dict[str, str]) -> None:
    """Each target answers the body; the gateway's request reaches the upstream signed."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        for target, url in urls.items():
            async with http.get(url, headers=headers, allow_redirects=False) as resp:
                if resp.status != 200 or await resp.read() != BODY:
                    raise RuntimeError(f"{target}: {url} answered {resp.status}, not the body")
        async with http.get(f"{gateway.base}{HEADERS_PATH}",
                            headers=headers) as resp:
            names = await resp.json()
        if "x-roam-signature" not in names or "cookie" in names:
            raise RuntimeError(f"the upstream got these headers through the gateway: {names}")


async def bench(options: Options, upstream: Child, nginx: Child,
                gateways: dict[str, ServerProcess]) -> tuple[Results, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        await upstream.wait_ready(http)
        await nginx.wait_ready(http)
    urls = {"direct": upstream.base + REQUEST_PATH, "nginx": nginx.base + REQUEST_PATH}
    proxies: dict[str, list[int]] = {"direct": [], "nginx": nginx.pids()}
    requests: dict[str, dict[str, str]] = {}
    info: dict[str, Any] = {}
    for ops, gateway in gateways.items():
        target = gateway_target(ops, options.ops)
        info, cookie = await session_cookie(gateway)
        # The same request to every target: the system's host, its session cookie.
        requests[target] = {"Cookie": cookie, "Accept": "*/*", "Host": system_host(gateway)}
        urls[target] = f"{gateway.base}{REQUEST_PATH}"
        proxies[target] = [gateway.pid]
        await check_targets({t: urls[t] for t in ("direct", "nginx", target)}, gateway,
                            requests[target])
    first = next(iter(requests.values()))
    requests.update(direct=first, nginx=first)
    children = [upstream.pid, *nginx.pids(), *(g.pid for g in gateways.values())]
    on_redis = options.store == "redis"
    if on_redis and (pid := redis_pid(REDIS_URL)) is not None:
        children.append(pid)  # its CPU is this bench's, not "others"
    results = Results()
    targets = [*TARGETS[:2], *(gateway_target(ops, options.ops) for ops in gateways)]
    for number in range(1, options.rounds + 1):
        for target in targets:
            for attempt in range(options.retries + 1):
                await wait_for_quiet(gateway.pid, None, limit=options.quiet,
                                     patience=options.patience)
                result = await run_round(urls[target], target, headers=requests[target],
                                         concurrency=options.concurrency,
                                         warmup=options.warmup, duration=options.duration,
                                         proxy=proxies[target], children=children,
                                         redis_url=REDIS_URL if on_redis and
                                         target.startswith("gateway") else None)
                print(round_line(number, result), file=sys.stderr, flush=True)
                for error in result.errors[:5]:
                    print(f"  !! {error}", file=sys.stderr, flush=True)
                for child in (upstream, nginx):
                    if not child.alive():
                        raise RuntimeError(f"{child.name} died")
                if not all(g.alive() for g in gateways.values()):
                    raise RuntimeError("a gateway died")
                others = result.cpu.others if result.cpu else 0.0
                if result.errors or others <= options.noisy:
                    break
                if attempt < options.retries:
                    print(f"  (other processes used {others:.2f} cores meanwhile: "
                          "measuring this round again)", file=sys.stderr, flush=True)
            results.rounds.append(result)
    return results, info


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.proxy",
        description="Requests/s and added latency of /s/{system}/… against nginx.")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="measured seconds per round (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="unmeasured seconds before each round (default 2)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of direct, nginx, gateway, interleaved (default 3)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="concurrent users (default 16)")
    parser.add_argument("--upstream", choices=("aiohttp", "asgi"), default="aiohttp",
                        help="the upstream server: aiohttp.web (default) or a bare ASGI app "
                             "under uvicorn")
    parser.add_argument("--quiet", type=float, default=0.25,
                        help="before a round, wait until other processes use fewer cores "
                             "than this (default 0.25)")
    parser.add_argument("--patience", type=float, default=60.0,
                        help="longest wait for that, in seconds, then go on (default 60)")
    parser.add_argument("--noisy", type=float, default=0.3,
                        help="a round during which other processes used more cores than "
                             "this is measured again (default 0.3)")
    parser.add_argument("--retries", type=int, default=1,
                        help="how many times a noisy round is measured again (default 1)")
    parser.add_argument("--store", choices=("memory", "redis"), default="memory",
                        help="the gateways' store (redis: $REDIS_URL or 127.0.0.1:6379/0, "
                             "under a prefix of this run; Redis commands per request are "
                             "reported)")
    parser.add_argument("--ops", default="on",
                        help="on, off, or on,off: gateways with and without metrics, "
                             "side by side (default on)")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.warmup < 0 or args.rounds < 1 or args.concurrency < 1:
        parser.error("--duration > 0, --warmup >= 0, --rounds >= 1, --concurrency >= 1")
    return Options(duration=args.duration, warmup=args.warmup, rounds=args.rounds,
                   concurrency=args.concurrency, upstream=args.upstream, quiet=args.quiet,
                   patience=max(0, args.patience), noisy=args.noisy,
                   retries=max(0, args.retries), ops=ops_modes(parser, args.ops),
                   store=args.store)


def ops_modes(parser: argparse.ArgumentParser, value: str) -> tuple[str, ...]:
    """``--ops``: ``on``, ``off`` or both, each once (also bench/sso.py's)."""
    modes = tuple(m.strip() for m in value.split(",") if m.strip())
    if not modes or set(modes) - {"on", "off"} or len(set(modes)) != len(modes):
        parser.error("--ops: on, off, or on,off")
    return modes


@contextlib.contextmanager
def children(tmp: Path, options: Options
             ) -> Iterator[tuple[Child, Child, dict[str, ServerProcess]]]:
    """Upstream, nginx and a gateway per ``--ops`` mode, started in that order; all stopped
    however this ends."""
    prefix = f"roambench:proxy:{secrets.token_hex(4)}:"
    with contextlib.ExitStack() as stack:
        if options.store == "redis":
            stack.callback(delete_prefixed, REDIS_URL, prefix)
        upstream = stack.enter_context(upstream_child(options.upstream))
        nginx = stack.enter_context(nginx_child(tmp, upstream.port))
        systems = write_systems(tmp, upstream.port)
        gateways = {}
        for ops in options.ops:
            gateway = ServerProcess(options.store, redis_url=REDIS_URL, prefix=prefix, ops=ops)
            gateway.command += ["--systems", str(systems)]
            gateways[ops] = stack.enter_context(gateway)
        yield upstream, nginx, gateways


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    command = " ".join(["python -m bench.proxy", *(sys.argv[1:] if argv is None else argv)])
    print(f"command: {command}", file=sys.stderr, flush=True)
    nginx_version = ensure_nginx()
    try:
        with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="roam-proxy-") as t, \
                children(Path(t), options) as (upstream, nginx, gateways):
            results, info = asyncio.run(bench(options, upstream, nginx, gateways))
    except KeyboardInterrupt:
        print("interrupted: every child stopped, nothing reported", file=sys.stderr)
        return 130
    print(machine_line(info))
    kind = "aiohttp.web" if options.upstream == "aiohttp" else "bare ASGI app under uvicorn"
    print(f"upstream: {kind}, 1 KiB body; "
          f"nginx {nginx_version}, worker_processes 1, keepalive 32; "
          f"gateway: {options.store} store, signed-header connector, "
          f"ops {','.join(options.ops)}")
    targets = [*TARGETS[:2], *(gateway_target(ops, options.ops) for ops in options.ops)]
    print(f"concurrency {options.concurrency}, {options.rounds} rounds of "
          f"{options.warmup:g} s warm-up + {options.duration:g} s measured per target, "
          f"interleaved ({', '.join(targets)}); req/s and CPU are medians of rounds, latency "
          "percentiles are over every measured request")
    print(table(results, targets))
    print()
    for target in targets[2:]:
        ratios = results.round_ratios(target)
        print(f"{target} ÷ nginx throughput: "
              f"{results.rate(target) / results.rate('nginx'):.2f} (medians' ratio); "
              f"round by round {', '.join(f'{r:.2f}' for r in ratios)}: median "
              f"{statistics.median(ratios):.2f}, lowest {min(ratios):.2f} "
              "(issue 15: median ≥ 0.6, no round below 0.5)")
    if options.store == "redis":
        for target in targets[2:]:
            print(f"{target}: Redis commands per proxied request "
                  f"{results.redis_per_request(target):.3f} (median of rounds)")
    if len(options.ops) == 2:
        on, off = (gateway_target(ops, options.ops) for ops in ("on", "off"))
        print(f"ops on ÷ off throughput: {results.rate(on) / results.rate(off):.3f} "
              f"(target ≥ 0.95); proxy CPU ms/req on {results.cpu_ms(on, 'proxy'):.3f}, "
              f"off {results.cpu_ms(off, 'proxy'):.3f}")
    errors = results.errors()
    if errors:
        print(f"\n!!! {len(errors)} FAILED REQUESTS: the figures above are not valid !!!",
              file=sys.stderr)
        for error in errors[:20]:
            print(f"!!! {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
