"""Roam's silent SSO hop against node-oidc-provider 9's, on one machine, in one run.

Run from the repository root::

    python -m bench.sso_peer [--rounds 5] [--duration 5] [--warmup 1] [--users 8]
                             [--store redis|memory] [--redis-url redis://127.0.0.1:6379/0]

A hop is what a second RP costs once a person has a session: ``/authorize`` with the
session cookie answers with a code at once (``prompt=none``), and the RP redeems it at
``/token`` with ``client_secret_basic`` and PKCE S256, getting an RS256 ID token and an
access token. Both servers are one process: Roam (``bench/_server.py``: uvicorn, uvloop,
httptools; the store ``--store`` names, Redis by default, as production runs) and
node-oidc-provider 9 (``bench/peer/provider.mjs``: its default in-memory adapter, one RS256
key, a confidential client with RS256 ID tokens; the access token is its default opaque
one). ``--users`` browsers, each logged in once (Roam's login page; the peer's development
interactions), hop back to back; the servers take turns round by round, the first
alternating, and each round's rate is hops a second over the window. The ratio printed is
the median of the rounds' Roam ÷ peer, with their range, and each server's CPU per hop
(``/proc``, its whole process). Target (issue 15): ≥ 2.

node-oidc-provider installs from the npm registry into ``bench/peer/node_modules`` on the
first run (``npm install``; no lock file is kept) and runs on the machine's Node.js.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    import os

    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.execv(sys.executable, [sys.executable, "-m", "bench.sso_peer", *sys.argv[1:]])  # noqa: S606

import argparse
import asyncio
import base64
import contextlib
import functools
import os
import re
import secrets
import shutil
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from urllib.parse import urlencode, urljoin

import aiohttp

from bench.flows import code_in, jwt_header, location, login, pkce
from bench.machine import CpuSnapshot, machine_line
from bench.processes import ServerProcess, delete_prefixed, free_port, redis_pid, stop
from bench.rounds import Round, drive
from bench.sso import hop

PEER = Path(__file__).resolve().parent / "peer"
ALG = "RS256"


class PeerProcess:
    """node-oidc-provider in a child process; always stopped on exit."""

    client_id = "bench-rp"

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.secret = secrets.token_urlsafe(32)
        self.redirect_uri = "http://127.0.0.1:9/callback"  # never called: the code is read
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> PeerProcess:
        install_peer()
        env = {**os.environ, "PORT": str(self.port), "CLIENT_SECRET": self.secret,
               "CALLBACK": self.redirect_uri, "NODE_ENV": "production"}
        node = shutil.which("node") or "node"
        self.process = subprocess.Popen([node, "provider.mjs"], cwd=PEER, env=env,  # noqa: S603
                                        stdout=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: object) -> None:
        process, self.process = self.process, None
        stop(process)

    async def wait_ready(self, http: aiohttp.ClientSession) -> str:
        """Wait for discovery; the provider's version (from its package)."""
        deadline = time.monotonic() + 30
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError("node-oidc-provider exited while starting")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(self.base + "/.well-known/openid-configuration") as resp:
                    if resp.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError("node-oidc-provider did not answer in 30 s")
            await asyncio.sleep(0.05)
        package = (PEER / "node_modules" / "oidc-provider" / "package.json").read_text()
        found = re.search(r'"version":\s*"([^"]+)"', package)
        return found.group(1) if found else "?"

    def authorize_url(self, challenge: str, *, silent: bool) -> str:
        query = {"client_id": self.client_id, "response_type": "code", "scope": "openid",
                 "redirect_uri": self.redirect_uri, "state": secrets.token_urlsafe(8),
                 "code_challenge": challenge, "code_challenge_method": "S256"}
        if silent:
            query["prompt"] = "none"
        return f"{self.base}/auth?{urlencode(query)}"

    def code_from(self, url: str) -> str:
        return code_in(self.redirect_uri, url)

    async def redeem(self, browser: aiohttp.ClientSession, code: str, verifier: str) -> None:
        basic = base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": self.redirect_uri, "code_verifier": verifier}
        async with browser.post(self.base + "/token", data=form,
                                headers={"Authorization": f"Basic {basic}"}) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"peer code redemption failed: {resp.status} {body}")
        if jwt_header(body["id_token"])["alg"] != ALG:
            raise RuntimeError("the peer's ID token is not RS256")


def install_peer() -> None:
    if (PEER / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed to install node-oidc-provider (bench/peer)")
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-package-lock",  # noqa: S603
                    "--loglevel=error"], cwd=PEER, check=True)


async def peer_login(browser: aiohttp.ClientSession, peer: PeerProcess, user: str) -> None:
    """A login through the peer's development interactions (any name), then a code."""
    verifier, challenge = pkce()
    url = peer.authorize_url(challenge, silent=False)
    for _ in range(6):  # auth → interaction (login) → auth → … → the client
        async with browser.get(url, allow_redirects=False) as resp:
            target = urljoin(peer.base, location(resp, resp.status if resp.status in (
                302, 303) else 303))
        if target.startswith(peer.redirect_uri):
            await peer.redeem(browser, peer.code_from(target), verifier)
            return
        if "/interaction/" in target:
            async with browser.get(target) as resp:
                page = await resp.text()
            prompt = "login" if 'name="login"' in page else "consent"
            form = {"prompt": prompt, "login": user, "password": "bench"}
            action = re.search(r'action="([^"]+)"', page)
            post_to = urljoin(peer.base, action.group(1)) if action else target
            async with browser.post(post_to, data=form, allow_redirects=False) as resp:
                url = urljoin(peer.base, location(resp, resp.status if resp.status in (
                    302, 303) else 303))
        else:
            url = target
    raise RuntimeError("the peer's login did not reach the client")


async def peer_hop(browser: aiohttp.ClientSession, peer: PeerProcess) -> None:
    verifier, challenge = pkce()
    async with browser.get(peer.authorize_url(challenge, silent=True),
                           allow_redirects=False) as resp:
        code = peer.code_from(location(resp, 303))
    await peer.redeem(browser, code, verifier)


async def run(options: argparse.Namespace) -> int:
    prefix = f"roambench:{secrets.token_hex(4)}:"
    redis = redis_pid(options.redis_url) if options.store == "redis" else None
    timeout = aiohttp.ClientTimeout(total=30)

    def jars() -> list[aiohttp.ClientSession]:
        return [aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                      timeout=timeout) for _ in range(options.users)]

    roam_browsers, peer_browsers = jars(), jars()
    http = aiohttp.ClientSession(timeout=timeout)
    rates: dict[str, list[float]] = {"roam": [], "peer": []}
    cpu: dict[str, list[float]] = {"roam": [], "peer": []}
    try:
        with ServerProcess(options.store, redis_url=options.redis_url,
                           prefix=prefix) as roam, PeerProcess() as peer:
            info = await roam.wait_ready(http)
            version = await peer.wait_ready(http)
            for browser in roam_browsers:
                await login(browser, roam, ALG)
            for index, browser in enumerate(peer_browsers):
                await peer_login(browser, peer, f"user-{index}")
            sides: dict[str, tuple[int, int | None, Callable[[aiohttp.ClientSession],
                                                             Awaitable[None]]]] = {
                "roam": (roam.pid, redis, lambda b: hop(b, roam, ALG)),
                "peer": (peer.pid, None, lambda b: peer_hop(b, peer)),
            }
            browsers = {"roam": roam_browsers, "peer": peer_browsers}
            for number in range(1, options.rounds + 1):
                order = ("roam", "peer") if number % 2 else ("peer", "roam")
                line = []
                for side in order:
                    pid, extra, step = sides[side]
                    result = await drive(
                        Round("hop"), [_bound(step, b) for b in browsers[side]],
                        warmup=options.warmup, duration=options.duration,
                        snapshot=functools.partial(CpuSnapshot.take, pid, extra))
                    if result.errors:
                        raise SystemExit(f"{side}: {result.errors[0]}")
                    rates[side].append(result.rate)
                    cpu[side].append(result.cpu_ms())
                    line.append(f"{side} {result.rate:6.0f} hops/s ({result.cpu_ms():.2f} ms)")
                print(f"  round {number}: " + ", ".join(line)
                      + f"; roam ÷ peer {rates['roam'][-1] / rates['peer'][-1]:.2f}",
                      flush=True)
    finally:
        for session in (*roam_browsers, *peer_browsers, http):
            await session.close()
        if options.store == "redis":
            delete_prefixed(options.redis_url, prefix)
    ratios = [r / p for r, p in zip(rates["roam"], rates["peer"], strict=True)]
    print(machine_line(info) + f"; peer: node-oidc-provider {version} on Node.js "
          f"{_node_version()}, in-memory adapter")
    print(f"silent SSO hop, RS256 ID tokens, {options.users} users, store {options.store}: "
          f"roam {statistics.median(rates['roam']):.0f} hops/s "
          f"({statistics.median(cpu['roam']):.2f} ms CPU/hop), peer "
          f"{statistics.median(rates['peer']):.0f} hops/s "
          f"({statistics.median(cpu['peer']):.2f} ms CPU/hop); roam ÷ peer "
          f"{statistics.median(ratios):.2f} (median of {len(ratios)} rounds; "
          f"{min(ratios):.2f}–{max(ratios):.2f}); target ≥ 2")
    return 0


def _bound(step: Callable[[aiohttp.ClientSession], Awaitable[None]],
           browser: aiohttp.ClientSession) -> Callable[[], Awaitable[None]]:
    return lambda: step(browser)


def _node_version() -> str:
    node = shutil.which("node")
    if node is None:
        return "?"
    return subprocess.run([node, "--version"], capture_output=True, text=True,  # noqa: S603
                          check=False).stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sso_peer", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--store", choices=("redis", "memory"), default="redis")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
