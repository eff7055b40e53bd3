"""What the metrics cost per proxied request, part by part, in CPU microseconds.

Run from the repository root::

    python -m bench.metrics_parts [--calls 200000]

The proxy's hot path records, per request, one counter and one histogram through
children bound once (``PrometheusMetrics.proxied``) and one store read timed by
``MeasuredStore`` (the host session's ``find_text``). Each is timed here in a loop, against
the same loop doing nothing (the floor), with prometheus-client's values in memory (one
process) and in files (the multiprocess mode: this script runs itself again with
``PROMETHEUS_MULTIPROC_DIR`` set, as it must be before the import). Compare the figures
with the gateway's CPU per proxied request in ``bench/proxy.py``'s table (~130 µs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence

from bench.processes import ROOT
from gateway.config import load_config
from gateway.metrics.recorder import open_metrics
from gateway.store import MemoryStore
from gateway.store.measured import MeasuredStore


def per_call(run: Callable[[], None], calls: int) -> float:
    """CPU microseconds per call of ``run``, the loop's own cost taken off."""

    def nothing() -> None:
        return None

    def timed(body: Callable[[], None]) -> float:
        start = time.process_time()
        for _ in range(calls):
            body()
        return time.process_time() - start

    return (min(timed(run) for _ in range(3)) - min(timed(nothing) for _ in range(3))) \
        / calls * 1e6


async def per_await(run: Callable[[], Awaitable[object]], floor: Callable[[], Awaitable[object]],
                    calls: int) -> float:
    async def timed(body: Callable[[], Awaitable[object]]) -> float:
        start = time.process_time()
        for _ in range(calls):
            await body()
        return time.process_time() - start

    spent = [await timed(run) for _ in range(3)]
    base = [await timed(floor) for _ in range(3)]
    return (min(spent) - min(base)) / calls * 1e6


def measure(calls: int) -> dict[str, float]:
    config = load_config(ROOT / "config" / "roam.toml", env={})
    metrics = open_metrics(config.settings.metrics, config.systems)
    system = next(iter(config.systems)).id
    inner = MemoryStore()
    timed_store = MeasuredStore(inner, metrics)
    asyncio.run(inner.upsert("host_session", "x", {"sid": "s", "identity": {}}, 600))
    return {
        "proxied request (counter + histogram)": per_call(
            lambda: metrics.proxied(system, 200, 0.0021), calls),
        "route request (counter + histogram)": per_call(
            lambda: metrics.request("/authorize", "GET", 302, 0.0042), calls),
        "store call timed (find_text)": asyncio.run(per_await(
            lambda: timed_store.find_text("host_session", "x"),
            lambda: inner.find_text("host_session", "x"), calls)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_parts",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        for name, micros in measure(args.calls).items():
            print(f"{name}\t{micros:.2f}")
        return 0
    print(f"command: python -m bench.metrics_parts --calls {args.calls}", file=sys.stderr)
    rows: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="roam-metrics-") as shared:
        for mode, extra in (("in memory", {}), ("multiprocess files",
                                                {"PROMETHEUS_MULTIPROC_DIR": shared})):
            env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            out = subprocess.run(  # noqa: S603 - this very script
                [sys.executable, "-m", "bench.metrics_parts", "--child",
                 "--calls", str(args.calls)], cwd=ROOT, env={**env, **extra},
                capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                part, figure = line.split("\t")
                rows.setdefault(part, {})[mode] = figure
    print("| part | µs CPU per call, values in memory | µs, multiprocess files |")
    print("| --- | ---: | ---: |")
    for name, by_mode in rows.items():
        print(f"| {name} | {by_mode['in memory']} | {by_mode['multiprocess files']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
