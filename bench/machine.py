"""Who used the machine's CPU, and waiting for it to be quiet: the benches share a machine.

Shared by every script in ``bench/``: CPU seconds of a process and of the whole machine
(``/proc``), what each party used over a measured window, and the machine line every
report starts with.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import aiohttp
import redis

CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all threads); 0 if it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_tree_cpu(pid: int) -> float:
    """As :func:`process_cpu`, with the live children of ``pid`` (a server's workers)."""
    total = process_cpu(pid)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                parent = int(fh.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            total += process_cpu(int(entry))
    return total


def machine_busy() -> float:
    """CPU seconds every core has spent not idle since boot (from ``/proc/stat``)."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class RedisWork(NamedTuple):
    commands: int
    scripts: int
    reads: int  # read events: one per batch of commands a client sent (a round trip)


def redis_work(url: str | None) -> RedisWork:
    """What the Redis at ``url`` did since it started: every command, those a Lua script
    calls included (``INFO stats``), the EVAL/EVALSHA calls among them (``INFO
    commandstats``) and its read events (``total_reads_processed``: a pipelined batch is
    one); this call's own two INFO commands are in them. Zeros without a URL. The server
    is shared: other clients' commands count too, so read it on a quiet machine (the
    benches print others' CPU)."""
    if not url:
        return RedisWork(0, 0, 0)
    with redis.Redis.from_url(url) as client:
        stats = client.info("stats")
        commands = client.info("commandstats")
    scripts = sum(int(commands.get(f"cmdstat_{name}", {}).get("calls", 0))
                  for name in ("eval", "evalsha", "eval_ro", "evalsha_ro"))
    return RedisWork(int(stats["total_commands_processed"]), scripts,
                     int(stats.get("total_reads_processed", 0)))


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    server: float
    client: float
    redis: float
    machine: float
    platform: float = 0.0  # a mock platform's process (bench/miniprogram.py)
    redis_commands: int = 0  # redis_work(): commands executed, scripts run, reads
    redis_scripts: int = 0
    redis_reads: int = 0

    @classmethod
    def take(cls, server_pid: int, redis_pid: int | None,
             platform_pid: int | None = None, *, redis_url: str | None = None
             ) -> CpuSnapshot:
        commands, scripts, reads = redis_work(redis_url)
        return cls(time.perf_counter(), process_tree_cpu(server_pid), time.process_time(),
                   process_cpu(redis_pid) if redis_pid else 0.0, machine_busy(),
                   process_cpu(platform_pid) if platform_pid else 0.0, commands, scripts,
                   reads)


@dataclass(frozen=True)
class CpuUse:
    """Cores used (1.0 = one core busy) between two snapshots."""

    seconds: float
    server: float
    client: float
    redis: float
    others: float  # everything else on the machine: other people's work, the kernel
    platform: float = 0.0
    redis_commands: int = 0  # executed in the window (a script's own calls included)
    redis_scripts: int = 0  # of them, EVAL/EVALSHA
    redis_reads: int = 0  # batches Redis read: round trips, whatever their size

    @classmethod
    def between(cls, a: CpuSnapshot, b: CpuSnapshot) -> CpuUse:
        seconds = b.at - a.at
        server, client, redis_ = (b.server - a.server, b.client - a.client, b.redis - a.redis)
        platform_ = b.platform - a.platform
        others = max(0.0, b.machine - a.machine - server - client - redis_ - platform_)
        # the first snapshot's two INFO commands ran inside the window
        commands = max(0, b.redis_commands - a.redis_commands - 2) if a.redis_commands else 0
        return cls(seconds, server / seconds, client / seconds, redis_ / seconds,
                   others / seconds, platform_ / seconds, commands,
                   b.redis_scripts - a.redis_scripts,
                   max(0, b.redis_reads - a.redis_reads - 2) if a.redis_reads else 0)


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

