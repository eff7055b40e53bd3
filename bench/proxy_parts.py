"""Where the proxy's CPU goes: the parts of ``bench/proxy.py`` measured one by one.

Run from the repository root::

    python -m bench.proxy_parts [--requests 16000]

Three figures, each CPU time per request at 16 concurrent requests, in this process
unless said otherwise, against the bench upstream (``bench/_proxy_upstream.py``):

* ``healthz``: the gateway server (one uvicorn worker, as in ``bench/proxy.py``) answering
  ``GET /healthz`` — the HTTP server side and Starlette routing with no work behind them;
  the gateway process's own CPU;
* ``aiohttp``: one ``GET`` of the 1 KiB answer through ``aiohttp.ClientSession`` (what
  ``AiohttpUpstream`` does per proxied request);
* ``httptools``: the same exchange written by hand over an ``asyncio.Protocol`` with
  httptools' response parser on 16 kept-alive connections: what the least a
  Python HTTP/1.1 client could cost.

It is a diagnosis, not a target: ``bench/proxy.py`` measures the proxy itself.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from typing import cast

import aiohttp
import httptools

from bench.machine import process_cpu
from bench.processes import ServerProcess
from bench.proxy import REQUEST_PATH, upstream_child

CONCURRENCY = 16


class _Exchange(asyncio.Protocol):
    """One kept-alive connection: write a request, resolve when its response is parsed."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: asyncio.Future[int] | None = None
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        done, self.done = self.done, None
        if done is not None:
            done.set_result(self.parser.get_status_code())

    def request(self, data: bytes) -> asyncio.Future[int]:
        if self.transport is None:
            raise RuntimeError("not connected")
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.done


async def _per_request(run: int, one: object) -> float:
    """CPU seconds of this process per call of ``one`` (an async callable)."""
    async def user(count: int) -> None:
        for _ in range(count):
            await one()  # type: ignore[operator]

    await asyncio.gather(*(user(max(run // CONCURRENCY // 10, 1)) for _ in range(CONCURRENCY)))
    started = time.process_time()
    await asyncio.gather(*(user(run // CONCURRENCY) for _ in range(CONCURRENCY)))
    return (time.process_time() - started) / (run // CONCURRENCY * CONCURRENCY)


async def client_parts(port: int, run: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}{REQUEST_PATH}"
    async with aiohttp.ClientSession() as session:
        async def via_aiohttp() -> None:
            async with session.get(url) as resp:
                await resp.read()

        aiohttp_cost = await _per_request(run, via_aiohttp)
    loop = asyncio.get_running_loop()
    exchanges = [(await loop.create_connection(_Exchange, "127.0.0.1", port))[1]
                 for _ in range(CONCURRENCY)]
    request = (f"GET {REQUEST_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               "Accept: */*\r\n\r\n").encode()
    free = list(exchanges)

    async def via_httptools() -> None:
        exchange = free.pop()
        try:
            await exchange.request(request)
        finally:
            free.append(exchange)

    httptools_cost = await _per_request(run, via_httptools)
    for exchange in exchanges:
        if exchange.transport is not None:
            exchange.transport.close()
    return {"aiohttp": aiohttp_cost, "httptools": httptools_cost}


async def healthz(run: int) -> float:
    with ServerProcess("memory", redis_url="redis://127.0.0.1:6379/0",
                       prefix="roambench:") as gateway:
        async with aiohttp.ClientSession() as session:
            await gateway.wait_ready(session)

            async def one() -> None:
                async with session.get(gateway.base + "/healthz") as resp:
                    await resp.read()

            await _per_request(run // 4, one)
            before = process_cpu(gateway.pid)
            await _per_request(run, one)
            return (process_cpu(gateway.pid) - before) / (run // CONCURRENCY * CONCURRENCY)


async def main(run: int) -> None:
    with upstream_child("aiohttp") as upstream:
        async with aiohttp.ClientSession() as session:
            await upstream.wait_ready(session)
        parts = await client_parts(upstream.port, run)
    parts["healthz"] = await healthz(run)
    print("| part | CPU ms per request |\n| --- | ---: |")
    for name in ("healthz", "aiohttp", "httptools"):
        print(f"| {name} | {parts[name] * 1e3:.3f} |")


def run(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=16000,
                        help="requests measured per part (default 16000)")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency on Linux
        asyncio.run(main(args.requests))
    else:
        uvloop.run(main(args.requests))


if __name__ == "__main__":
    run()
