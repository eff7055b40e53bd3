"""Two versions of the gateway's proxy, A/B, in one run: which change made it faster.

Run from the repository root::

    python -m bench.proxy_ab --base HEAD~1 [--rounds 6] [--duration 5] [--concurrency 16]

``bench/proxy.py`` compares the gateway with nginx; on a shared two-core machine its
figures drift by a quarter between runs, which hides a 5 % change. This runs the gateway
of ``--base`` (a git revision, checked out into a temporary worktree) and the gateway of
the working tree side by side — one upstream, one session each, rounds alternating
(base, this) — and reports each one's requests/s and CPU per request: the round medians
and the per-round ratios. Both children run ``bench/_server.py`` of their own tree with
this interpreter. Every response must be a 200 with the exact body.

Both serve the system in path mode (``/s/<id>/…`` with the issuer's session cookie), the
one layout every version serves: ``bench/_server.py --path-mode`` where the tree has it
(``[proxy] path_mode``), as is before. (``bench/proxy.py`` measures the production
layout, a system on its own host.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import aiohttp
import yarl

from bench.flows import login
from bench.processes import ROOT, SECRET_ENV, ServerProcess, sigterm_as_interrupt
from bench.proxy import (
    REQUEST_PATH,
    SYSTEM_ID,
    run_round,
    upstream_child,
    write_systems,
)


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """``revision`` checked out in a temporary git worktree, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="roam-ab-") as tmp:
        path = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(path), revision],  # noqa: S603, S607
                       cwd=ROOT, check=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)],  # noqa: S603, S607
                           cwd=ROOT, check=False)


class TreeServer(ServerProcess):
    """``bench/_server.py`` of another source tree (its modules first on the path)."""

    def __init__(self, tree: Path, systems: Path) -> None:
        super().__init__("memory", redis_url="redis://127.0.0.1:6379/0", prefix="roambench:")
        self.tree = tree
        self.command += ["--systems", str(systems)]

    def __enter__(self) -> TreeServer:
        env = {**os.environ, SECRET_ENV: self.secret, "PYTHONPATH": str(self.tree)}
        if "--path-mode" in (self.tree / "bench" / "_server.py").read_text("utf-8"):
            self.command.append("--path-mode")  # a tree that requires hosts otherwise
        self.process = subprocess.Popen(self.command, cwd=self.tree, env=env)  # noqa: S603
        return self


async def path_session_cookie(server: ServerProcess) -> str:
    """One login; the issuer's session cookie, which path mode's ``/s/<id>/`` reads."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     timeout=aiohttp.ClientTimeout(total=30)) as browser:
        await server.wait_ready(browser)
        await login(browser, server, "ES256")
        cookie = browser.cookie_jar.filter_cookies(yarl.URL(server.base)).get("roam_session")
        if cookie is None:
            raise RuntimeError("the login set no roam_session cookie")
        return f"roam_session={cookie.value}"


async def compare(servers: dict[str, TreeServer], upstream_pid: int, *, rounds: int,
                  duration: float, concurrency: int) -> dict[str, list[tuple[float, float]]]:
    cookies = {name: await path_session_cookie(server) for name, server in servers.items()}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
    for number in range(1, rounds + 1):
        for name, server in servers.items():
            result = await run_round(
                f"{server.base}/s/{SYSTEM_ID}{REQUEST_PATH}", name,
                headers={"Cookie": cookies[name], "Accept": "*/*"}, concurrency=concurrency,
                warmup=1.0, duration=duration, proxy=[server.pid],
                children=[upstream_pid, server.pid])
            if result.errors or result.cpu is None:
                raise RuntimeError(f"{name}: {result.errors[:3]}")
            ms = result.ms_per_request(result.cpu.proxy)
            results[name].append((result.rate, ms))
            print(f"  round {number} {name:4}: {result.rate:7.0f} req/s  "
                  f"gateway {ms:.3f} ms CPU/req", file=sys.stderr, flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy_ab", description=__doc__)
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    with sigterm_as_interrupt(), worktree(args.base) as base, \
            tempfile.TemporaryDirectory(prefix="roam-ab-") as tmp, \
            upstream_child("aiohttp") as upstream, contextlib.ExitStack() as stack:
        systems = write_systems(Path(tmp), upstream.port, own_host=False)
        servers = {"base": stack.enter_context(TreeServer(base, systems)),
                   "this": stack.enter_context(TreeServer(Path(ROOT), systems))}

        async def run() -> dict[str, list[tuple[float, float]]]:
            async with aiohttp.ClientSession() as http:
                await upstream.wait_ready(http)
            return await compare(servers, upstream.pid, rounds=args.rounds,
                                 duration=args.duration, concurrency=args.concurrency)

        results = asyncio.run(run())
    print(f"base = {args.base}, this = the working tree; {args.rounds} rounds of "
          f"{args.duration:g} s at concurrency {args.concurrency}, alternating")
    print("| gateway | req/s (median) | CPU ms/req (median) |\n| --- | ---: | ---: |")
    for name, rows in results.items():
        print(f"| {name} | {statistics.median(r for r, _ in rows):.0f} "
              f"| {statistics.median(m for _, m in rows):.3f} |")
    ratios = [this[0] / base[0] for base, this in zip(results["base"], results["this"],
                                                       strict=True)]
    print(f"this ÷ base req/s per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
