"""What one browser session leaves in Redis: records by kind, keys and bytes.

Runs the gateway (``bench/_server.py``) on Redis under a prefix of its own, logs the demo
citizen in once through the pages, then has each bench client (one per signing
algorithm) take ``--hops`` silent ``/authorize`` → ``/token`` round trips in that one
session — an RP that re-authorizes on every page. It then lists every key the run wrote
with Redis's own ``MEMORY USAGE`` (the key, its value and Redis's overhead) and its TTL,
and prints bytes per session, per client the session logged into, and per code.

    python -m bench.footprint --hops 200

Codes are counted apart: each lives ``[tokens] code_ttl`` seconds (60) and is gone after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
from collections import defaultdict
from dataclasses import dataclass, field

import aiohttp
import redis.asyncio as aioredis

from bench.flows import seed
from bench.processes import ServerProcess, delete_prefixed

ALGS = ("ES256", "RS256")
# what a session and its logins keep (health and throttling records are not the session's)
SESSION_KINDS = frozenset({"session", "session_rp", "grant", "person", "authz_login",
                           "index grant", "index sid:", "index sub:"})


@dataclass
class Kind:
    keys: int = 0
    bytes: int = 0
    ttl_max: int = 0  # seconds
    members: list[int] = field(default_factory=list)  # index sets: their sizes


def kind_of(name: str) -> str:
    """``{session:abc}`` → ``session``; ``grant:{sid:…}`` → ``index sid:``."""
    if name.startswith("grant:{"):
        inner = name[len("grant:{"):-1]
        group, sep, _ = inner.partition(":")
        return f"index {group}:" if sep else "index grant"
    return name.strip("{}").partition(":")[0]


async def census(url: str, prefix: str) -> dict[str, Kind]:
    client = aioredis.Redis.from_url(url)
    kinds: dict[str, Kind] = defaultdict(Kind)
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            kind = kinds[kind_of(key[len(prefix):].decode())]
            kind.keys += 1
            kind.bytes += int(await client.memory_usage(key, samples=0) or 0)
            kind.ttl_max = max(kind.ttl_max, int(await client.ttl(key)))
            if await client.type(key) == b"set":
                kind.members.append(int(await client.scard(key)))
    finally:
        await client.aclose()
    return dict(kinds)


def report(kinds: dict[str, Kind], hops: int) -> None:
    print("| record | keys | bytes | bytes/key | longest TTL | set sizes |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name in sorted(kinds):
        k = kinds[name]
        sizes = f"{min(k.members)}–{max(k.members)}" if k.members else ""
        print(f"| {name} | {k.keys} | {k.bytes} | {k.bytes // max(1, k.keys)} | "
              f"{k.ttl_max / 3600:.1f} h | {sizes} |")
    lasting = {n: k for n, k in kinds.items() if n in SESSION_KINDS}
    total = sum(k.bytes for k in lasting.values())
    clients = len(ALGS)
    print()
    print(f"One session, {clients} clients, {hops} silent round trips each "
          f"({clients * hops + 1} codes redeemed):")
    print(f"- the session's records, past the codes' minute: "
          f"{sum(k.keys for k in lasting.values())} keys, {total} bytes")
    per_client = sum(k.bytes for n, k in lasting.items()
                     if n in ("grant", "session_rp", "index grant")) / clients
    print(f"- per client logged into (grant, link, the grant's index): {per_client:.0f} bytes")
    codes = kinds.get("code")
    if codes is not None:
        print(f"- per code, for its minute: {codes.bytes / max(1, codes.keys):.0f} bytes")


async def run(args: argparse.Namespace) -> None:
    prefix = f"roambench:footprint:{secrets.token_hex(4)}:"
    try:
        with ServerProcess("redis", redis_url=args.redis_url, prefix=prefix) as server:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
                await server.wait_ready(browser)
                for alg in ALGS:
                    await seed(browser, server, alg, args.hops + (1 if alg == ALGS[0] else 0))
            report(await census(args.redis_url, prefix), args.hops)
    finally:
        delete_prefixed(args.redis_url, prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hops", type=int, default=200)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL",
                                                              "redis://127.0.0.1:6379/0"))
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
