"""Rounds of load and their report: users looping a step back to back over a measured
window, the CPU each party used meanwhile, and the Markdown table of the results.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

from bench.machine import CpuSnapshot, CpuUse, wait_for_quiet
from bench.processes import ServerProcess


@dataclass
class Round:
    target: str  # what was loaded: "floor", "token", "hop", …
    completed: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    cpu: CpuUse | None = None  # over the measured window
    process: str = "server"  # whose CPU is counted per request: "server" or "platform"

    @property
    def seconds(self) -> float:
        return self.cpu.seconds if self.cpu else 0.0

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def cpu_ms(self, process: str | None = None) -> float:
        """CPU ms of ``process`` (by default this round's) per completed request; NaN if
        none completed."""
        if not self.cpu or not self.completed:
            return float("nan")
        cores = float(getattr(self.cpu, process or self.process))
        return cores * self.seconds / self.completed * 1e3

    @property
    def server_ms_per_request(self) -> float:
        """CPU of ``process`` per completed request (Redis's own CPU not included)."""
        return self.cpu_ms()

    def redis_per_request(self) -> tuple[float, float, float]:
        """Redis commands executed, scripts run and batches read (round trips) per
        completed request (NaN: not counted, or none completed)."""
        if not self.cpu or not self.completed or not self.cpu.redis_commands:
            return float("nan"), float("nan"), float("nan")
        return (self.cpu.redis_commands / self.completed,
                self.cpu.redis_scripts / self.completed,
                self.cpu.redis_reads / self.completed)


Step = Callable[[], Awaitable[None]]
"""One unit of a user's work (a request, a hop); raises ``RuntimeError`` (or an aiohttp or
timeout error) when the answer is not the one expected."""


async def drive(result: Round, steps: Sequence[Step], *, warmup: float, duration: float,
                snapshot: Callable[[], CpuSnapshot], rate: float = 0.0) -> Round:
    """Each step is a user looping back to back; count what completes in the window.

    A step that fails is counted in ``result.errors`` and stops its user, loudly (a token
    chain may be spent). ``snapshot`` takes the CPU at the window's two ends. ``rate`` > 0
    paces the users together to that many steps a second (a user never sends before its
    last step answered): the same load for servers of any capacity."""
    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + duration
    every = len(steps) / rate if rate > 0 else 0.0  # one user's interval

    async def user(index: int, step: Step) -> None:
        due = start + index / rate if rate > 0 else 0.0
        while (sent := time.perf_counter()) < window_end:
            if every:
                if due > sent:
                    await asyncio.sleep(due - sent)
                    sent = time.perf_counter()
                due += every
            try:
                await step()
            except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
                result.errors.append(f"user {index}: {type(exc).__name__}: {exc}")
                return
            done = time.perf_counter()
            if sent >= window_start and done <= window_end:
                result.completed += 1
                result.latencies.append(done - sent)

    async def meter() -> None:
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        first = snapshot()
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        result.cpu = CpuUse.between(first, snapshot())

    await asyncio.gather(meter(), *(user(i, step) for i, step in enumerate(steps)))
    return result


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

    def redis_per_request(self, target: str) -> str:
        """``commands (scripts) / round trips`` per request, medians of rounds; ``—`` if
        not counted."""
        counted = [r.redis_per_request() for r in self.of(target)]
        counted = [c for c in counted if not math.isnan(c[0])]
        if not counted:
            return "—"
        return (f"{statistics.median(c[0] for c in counted):.1f} "
                f"({statistics.median(c[1] for c in counted):.1f}) / "
                f"{statistics.median(c[2] for c in counted):.1f}")

    def others(self) -> float:
        return max((r.cpu.others for r in self.rounds if r.cpu), default=0.0)

    def errors(self) -> list[str]:
        return [e for r in self.rounds for e in r.errors]

    def paired(self, other: Combination, target: str) -> list[float]:
        """Round by round, this rate ÷ ``other``'s, sorted: the rounds of one number ran
        back to back, so a machine drifting from round to round (a neighbour's load, the
        clock) cancels out of each ratio, which a ratio of the two medians does not."""
        return sorted(mine.rate / theirs.rate for mine, theirs in
                      zip(self.of(target), other.of(target), strict=True) if theirs.rate)


def round_line(store: str, alg: str, number: int, r: Round) -> str:
    cpu = r.cpu or CpuUse(0.0, 0.0, 0.0, 0.0, 0.0)
    redis_part = f" redis {cpu.redis:4.0%}" if store == "redis" else ""
    platform_part = f" platform {cpu.platform:4.0%}" if cpu.platform else ""
    return (f"  {store:6} {alg} round {number} {r.target:5}: {r.rate:7.1f} req/s  "
            f"p50 {percentile(r.latencies, 50) * 1e3:5.1f} ms  "
            f"{r.server_ms_per_request:5.2f} {r.process}-CPU ms/req  CPU: server "
            f"{cpu.server:4.0%} client {cpu.client:4.0%}{redis_part}{platform_part} "
            f"others {cpu.others:4.0%}  errors {len(r.errors)}")


def table(results: Sequence[Combination], *, target: str = "token",
          label: str = "/token") -> str:
    """The Markdown table of docs/performance.md: ``target`` rounds against the floor."""
    lines = [
        f"| store | alg | floor req/s | {label} req/s | ratio | {label} p50 ms "
        f"| {label} p99 ms | server CPU ms/req floor / {label} "
        f"| Redis commands (scripts) / round trips per {label} | others' CPU (max) "
        "| errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in results:
        floor, measured = c.rate("floor"), c.rate(target)
        lat = c.latencies(target)
        lines.append(
            f"| {c.store} | {c.alg} | {floor:.0f} | {measured:.0f} | {measured / floor:.2f} "
            f"| {percentile(lat, 50) * 1e3:.1f} | {percentile(lat, 99) * 1e3:.1f} "
            f"| {c.cpu_ms('floor'):.2f} / {c.cpu_ms(target):.2f} "
            f"| {c.redis_per_request(target)} | {c.others():.0%} "
            f"| {len(c.errors())} |")
    return "\n".join(lines)


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
    workers: int = 1  # bench/sso.py: worker processes per server
    rate: float = 0.0  # bench/sso.py: hops a second, paced (0: back to back)



async def measure_quietly(run: Callable[[], Awaitable[Round]], *, server: ServerProcess,
                          redis_pid: int | None, options: Options,
                          line: Callable[[Round], str]) -> Round:
    """One round once the machine is quiet, measured again (``options.retries`` times at
    most) while other processes took more than ``options.noisy`` cores during it."""
    for attempt in range(options.retries + 1):
        await wait_for_quiet(server.pid, redis_pid, limit=options.quiet,
                             patience=options.patience)
        result = await run()
        print(line(result), file=sys.stderr, flush=True)
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
    return result



def arguments(prog: str, description: str, *, stores: str, algs: str, users: str,
              retries: int = 3) -> argparse.ArgumentParser:
    """The options every bench of rounds takes (``options_from`` reads them)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--duration", type=float, default=10.0,
                        help="measured seconds per round (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="unmeasured seconds before each round (default 2)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of each target, interleaved (default 3)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help=f"{users} (default 16)")
    parser.add_argument("--stores", default=stores, help=f"default {stores}")
    parser.add_argument("--algs", default=algs, help=f"default {algs}")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--quiet", type=float, default=0.25,
                        help="before a round, wait until other processes use fewer cores "
                             "than this (default 0.25)")
    parser.add_argument("--patience", type=float, default=60.0,
                        help="longest wait for that, in seconds, then go on (default 60)")
    parser.add_argument("--noisy", type=float, default=0.3,
                        help="a round during which other processes used more cores than "
                             "this is measured again (default 0.3)")
    parser.add_argument("--retries", type=int, default=retries,
                        help=f"how many times a noisy round is measured again "
                             f"(default {retries})")
    return parser


def options_from(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Options:
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


async def alternate(runs: Sequence[Callable[[], Awaitable[Round]]], *, server: ServerProcess,
                    redis_pid: int | None, options: Options, alg: str) -> list[Round]:
    """``options.rounds`` rounds of each run, alternating (a, b, a, b, …), each measured
    quietly."""
    rounds = []
    for number in range(1, options.rounds + 1):
        for run in runs:
            rounds.append(await measure_quietly(
                run, server=server, redis_pid=redis_pid, options=options,
                line=functools.partial(round_line, server.store, alg, number)))
    return rounds
