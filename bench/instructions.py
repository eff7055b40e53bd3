"""What a request costs the gateway in instructions, counted by Valgrind's callgrind: a
figure no noisy neighbour moves, to set beside the CPU seconds the other benches time.

Run from the repository root (Debian: ``apt-get install valgrind``)::

    python -m bench.instructions [--target hop|floor] [--sides on,off] [--store memory]
                                 [--requests 320] [--warmup 20]

Each side is one process under callgrind (``--instr-atstart=no``) holding the gateway app
of ``bench/_server.py`` — the same app, with ``/floor/token`` — and driving it through
ASGI directly, with no server and no network: what is counted is the app's own work.
Eight citizens log in through the pages; after a warm-up, callgrind counts one window of
requests (``--target hop``: a silent SSO hop, ``/authorize`` with the session cookie, then
the code redeemed at ``/token`` with PKCE, an ES256 ID token; ``floor``: ``/floor/token``),
the audit trail flushed at its end so each window holds the writing of its own events;
then a window as long, idle. Work done by the clock (the health code's shared-state
reads, timers) lands in both: the idle window's count is taken off the first. Active
health probes are left out (``bench/_server.py``'s ``by_request``) — they run by the
clock, not by request — and the trail writes full batches, as it does at saturation.

``--sides on,off`` compares a gateway with its metrics and audit trail against one
without (issue 12 item 7, ``bench/_server.py --ops``); ``off,off`` is the control (two
alike give the same count within a fraction of a per cent on the memory store).
``$ROAMBENCH_AUDIT_UPTO`` (``take``, ``queue``, ``shape``: ``bench/_audit_stages.py``)
stops the "on" side's audit trail after one stage, to count the trail stage by stage. Counts,
not time: an instruction that misses the cache costs more than one that hits, so a ratio
of counts is what the code asks of the machine, not what a saturated machine serves.
``--store redis`` counts the Redis client too, but not deterministically: how many
commands share a pipeline (``gateway/store/pipelining.py``) depends on timing, and two
alike sides differ by a few per cent; compare on the memory store.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    import os

    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.execv(sys.executable, [sys.executable, "-m", "bench.instructions", *sys.argv[1:]])  # noqa: S606

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from bench.flows import authorize_path, code_in, login_form, pkce
from bench.processes import ROOT, delete_prefixed, free_port, remove_audit_file

ALG = "ES256"
USERS = 8
CHILD = "--child"


# -- the child: one gateway app under callgrind ------------------------------------------


class Window:
    """Brackets of callgrind's counting, through ``callgrind_control`` (this process)."""

    def __init__(self) -> None:
        self.pid = str(os.getpid())

    def _control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, self.pid], check=True,  # noqa: S603,S607
                       capture_output=True)

    async def count(self, work: Callable[[], Awaitable[None]]) -> float:
        """Count ``work``'s instructions into a dump of their own; its seconds."""
        self._control("--instr=on")
        self._control("--zero")
        start = time.perf_counter()
        await work()
        seconds = time.perf_counter() - start
        self._control("--dump")
        self._control("--instr=off")
        return seconds


class Asgi:
    """Requests straight into an ASGI app: the least a client can add to the count."""

    def __init__(self, app: Any, host: str) -> None:
        self.app = app
        self.host = host.encode()

    async def request(self, method: str, target: str, headers: Sequence[tuple[str, str]],
                      body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        path, _, query = target.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": path,
                 "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
                 "headers": [(b"host", self.host), *((k.encode(), v.encode())
                                                    for k, v in headers)],
                 "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80), "state": {}}
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status = 0
        answer_headers: dict[str, str] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # no disconnect while the app answers
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                answer_headers.update((k.decode().lower(), v.decode())
                                      for k, v in message.get("headers", ()))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, answer_headers, b"".join(chunks)


@dataclass
class Citizen:
    cookie: str


class Driver:
    def __init__(self, app: Any, *, client_id: str, secret: str, redirect_uri: str,
                 base: str) -> None:
        self.asgi = Asgi(app, urlsplit(base).netloc)
        self.app = app  # the pages too, through the same layers
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.base = base
        self.basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()

    def authorize_target(self, challenge: str) -> str:
        return authorize_path(self.client_id, self.redirect_uri, challenge)

    async def log_in(self) -> Citizen:
        """Through the pages, as bench/flows.py's login (httpx over ASGI: set-up only)."""
        transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url=self.base) as browser:
            _, challenge = pkce()  # the login's code is not redeemed
            answer = await browser.get(self.authorize_target(challenge))
            page = await browser.get(urljoin(self.base, answer.headers["location"]))
            answer = await browser.post("/login", data=login_form(page.text))
            answer = await browser.get(urljoin(self.base, answer.headers["location"]))
            if answer.status_code != 302:
                raise RuntimeError(f"login ended with {answer.status_code}")
            return Citizen("; ".join(f"{k}={v}" for k, v in browser.cookies.items()))

    async def hop(self, citizen: Citizen) -> None:
        verifier, challenge = pkce()
        status, headers, _ = await self.asgi.request(
            "GET", self.authorize_target(challenge), [("cookie", citizen.cookie)])
        if status != 302:
            raise RuntimeError(f"/authorize answered {status}, not a silent redirect")
        code = code_in(self.redirect_uri, headers.get("location", ""))
        await self.token({"grant_type": "authorization_code", "code": code,
                          "redirect_uri": self.redirect_uri, "code_verifier": verifier})

    async def floor(self, citizen: Citizen) -> None:
        await self.token({"grant_type": "refresh_token",
                          "refresh_token": secrets.token_urlsafe(32)}, path="/floor/token")

    async def token(self, form: dict[str, str], path: str = "/token") -> None:
        body = urlencode(form).encode()
        status, _, answer = await self.asgi.request("POST", path, [
            ("authorization", self.basic),
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-length", str(len(body)))], body)
        if status != 200 or b"id_token" not in answer:
            raise RuntimeError(f"{path} answered {status}: {answer[:200]!r}")


async def lifespan(app: Any) -> Callable[[], Awaitable[None]]:
    """Start the app's lifespan; returns how to end it."""
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    started, stopped = asyncio.Event(), asyncio.Event()
    await inbox.put({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.failed":
            raise RuntimeError(message.get("message", "startup failed"))
        (started if message["type"] == "lifespan.startup.complete" else stopped).set()

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                    "state": {}}, inbox.get, send))
    await started.wait()

    async def end() -> None:  # holds the lifespan's task until it ends
        await inbox.put({"type": "lifespan.shutdown"})
        await stopped.wait()
        await task

    return end


async def child(options: argparse.Namespace) -> None:
    """Counts one side's windows."""
    from bench._server import REDIRECT_URI, build_app, client_id
    from gateway.logs import RequestIds
    from gateway.server import freeze_startup_objects

    secret = secrets.token_urlsafe(32)
    port = options.port  # names the issuer and the audit file: nothing listens
    app = build_app(store=options.store, redis_url=options.redis_url, prefix=options.prefix,
                    port=port, secret=secret, ops=options.child == "on", by_request=True)
    end = await lifespan(app)
    # as `roam serve` runs the app (gateway/server.py's uvicorn_config): a request id each
    driver = Driver(RequestIds(app), client_id=client_id(ALG), secret=secret,
                    redirect_uri=REDIRECT_URI, base=f"http://127.0.0.1:{port}")
    citizens = [await driver.log_in() for _ in range(USERS)]
    step = driver.hop if options.target == "hop" else driver.floor
    trail = app.state.gateway.audit

    async def requests(each: int) -> None:
        async def one(citizen: Citizen) -> None:
            for _ in range(each):
                await step(citizen)
        await asyncio.gather(*(one(citizen) for citizen in citizens))
        await trail.flush()

    await requests(max(options.warmup // USERS, 1))
    freeze_startup_objects()
    window = Window()
    each = max(options.requests // USERS, 1)
    busy = await window.count(lambda: requests(each))

    async def idle() -> None:
        await asyncio.sleep(busy)
        await trail.flush()

    await window.count(idle)
    await end()
    print(json.dumps({"requests": each * USERS, "seconds": busy}), flush=True)


# -- the parent: one child per side, their dumps read --------------------------------------


@dataclass
class Count:
    side: str
    requests: int
    busy: int  # instructions in the requests' window
    idle: int  # in the idle window as long

    @property
    def per_request(self) -> float:
        return (self.busy - self.idle) / self.requests


def dump_total(path: Path) -> int:
    """The instructions a callgrind dump holds: its ``totals:`` line (the events of this
    dump; ``summary:`` may carry a count from before the last zeroing)."""
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"{path}: no totals line")


def run_side(name: str, side: str, options: argparse.Namespace, out: Path
             ) -> subprocess.Popen[str]:
    command = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no",
        f"--callgrind-out-file={out / name}.%p", sys.executable, "-m", "bench.instructions",
        CHILD, side, "--target", options.target, "--store", options.store,
        "--requests", str(options.requests), "--warmup", str(options.warmup),
        "--redis-url", options.redis_url, "--prefix", f"{options.prefix}{name}:",
        "--port", str(free_port())]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,  # noqa: S603
                            stderr=subprocess.PIPE, text=True)


def collect(side: str, process: subprocess.Popen[str], out: Path) -> Count:
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the {side} side failed:\n{stderr[-3000:]}")
    report = json.loads(stdout.strip().splitlines()[-1])
    dumps = sorted(out.glob(f"{side}.{process.pid}.*"),
                   key=lambda p: int(p.name.rsplit(".", 1)[1]))
    if len(dumps) != 2:
        raise RuntimeError(f"the {side} side left {len(dumps)} dumps, not 2")
    return Count(side, report["requests"], dump_total(dumps[0]), dump_total(dumps[1]))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", choices=("hop", "floor"), default="hop")
    parser.add_argument("--sides", default="on,off", choices=("on,off", "off,on", "off,off",
                                                              "on,on"))
    parser.add_argument("--store", choices=("memory", "redis"), default="memory",
                        help="memory (default; deterministic) or redis (the Redis client "
                             "counted too; its pipelines vary with timing)")
    parser.add_argument("--requests", type=int, default=320,
                        help="requests counted a side (default 320; a hop is two)")
    parser.add_argument("--warmup", type=int, default=160)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default=f"roambench:{secrets.token_hex(4)}:")
    parser.add_argument("--keep", type=Path, default=None,
                        help="a directory to keep callgrind's dumps in (callgrind_annotate)")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(CHILD, choices=("on", "off"), default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if options.child is not None:
        try:
            asyncio.run(child(options))
        finally:
            remove_audit_file(options.port)
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    sides = options.sides.split(",")
    given = sys.argv[1:] if argv is None else argv
    print(f"command: python -m bench.instructions {' '.join(given)}", file=sys.stderr,
          flush=True)
    with tempfile.TemporaryDirectory(prefix="roam-callgrind-") as directory:
        out = Path(directory) if options.keep is None else options.keep
        out.mkdir(parents=True, exist_ok=True)
        try:  # the two sides at once: a count does not depend on what else runs
            running = [(f"{side}{index}", run_side(f"{side}{index}", side, options, out))
                       for index, side in enumerate(sides)]
            counts = [collect(name, process, out) for name, process in running]
        finally:
            if options.store == "redis":
                delete_prefixed(options.redis_url, options.prefix)
    first, second = counts
    what = "silent SSO hop" if options.target == "hop" else "/floor/token request"
    print(f"{what}, {options.store} store, {ALG} ID token, {first.requests} counted a side "
          f"(callgrind; the idle window's count taken off)")
    for count, side in zip(counts, sides, strict=True):
        print(f"  {side:3}: {count.per_request:12,.0f} instructions a request  "
              f"(window {count.busy:,}, idle {count.idle:,})")
    share = 1 - second.per_request / first.per_request
    print(f"{second.side[:-1]} ÷ {first.side[:-1]}: {second.per_request / first.per_request:.4f}"
          f"  ({first.per_request - second.per_request:,.0f} instructions a request, "
          f"{share:.1%} of the first)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
