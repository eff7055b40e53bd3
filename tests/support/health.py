"""Health for tests: parts built by hand over a store, a health endpoint whose answer a
test sets, and waiting on a condition (never on a clock)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gateway.config import HealthSection, Systems
from gateway.health import HealthChecks
from gateway.store import MemoryStore, Store

DEADLINE = 60.0
"""Seconds a condition may take: generous, the machine may be busy; no test asserts time."""


def local_health(systems: Systems, store: Store | None = None, *, node: str = "test-node",
                 **rules: Any) -> HealthChecks:
    """Every system's instances judged by traffic (as the proxy's are), over ``store`` (a
    MemoryStore by default), probing nothing; ``rules`` are ``[health]`` keys."""
    section = HealthSection(**{"active": False, **rules})
    return HealthChecks(MemoryStore() if store is None else store, systems, section,
                        http=None, passive=[system.id for system in systems], node=node)


def eventually(check: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll ``check`` until it returns something true; that value. ``AssertionError``
    naming ``what`` if it never does."""
    until = time.monotonic() + deadline
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > until:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


async def until(check: Callable[[], Awaitable[Any]], what: str,
                deadline: float = DEADLINE) -> Any:
    """As :func:`eventually`, for a coroutine check, without blocking the event loop."""
    end = time.monotonic() + deadline
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > end:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


class HealthEndpoint:
    """A system instance's own pages: ``/healthz`` answers ``status`` (a test changes it)
    and remembers who asked (each probe's ``User-Agent`` names its gateway process);
    ``/slow`` answers after ``slow`` seconds; every other path answers 200 with
    ``name``, counted in ``served``."""

    def __init__(self, name: str = "a", status: int = 200) -> None:
        self.name = name
        self.status = status
        self.slow = 5.0
        self.probes: list[str] = []
        self.served = 0
        self._lock = threading.Lock()

    def probers(self) -> set[str]:
        with self._lock:
            return set(self.probes)

    def app(self) -> Starlette:
        async def healthz(request: Request) -> Response:
            with self._lock:
                self.probes.append(request.headers.get("user-agent", ""))
            if self.status in (301, 302, 303, 307, 308):
                return Response(status_code=self.status, headers={"Location": "/login"})
            return PlainTextResponse("ok", status_code=self.status)

        async def slow(request: Request) -> Response:
            await asyncio.sleep(self.slow)
            return PlainTextResponse("late")

        async def page(request: Request) -> Response:
            with self._lock:
                self.served += 1
            return PlainTextResponse(self.name)

        return Starlette(routes=[Route("/healthz", healthz), Route("/slow", slow),
                                 Route("/{path:path}", page, methods=["GET", "POST"])])
