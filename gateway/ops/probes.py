"""``/healthz`` and ``/readyz``, for load balancers and Kubernetes.

``/healthz`` (liveness) says only that the process serves requests: restarting it for a
database outage would not help. ``/readyz`` (readiness) says whether it should be sent
traffic: the store answers, the signing keys every client needs are loaded, the
configuration was loaded and checked (a process with a bad one never starts), and the
audit trail can record (its sink is writable, writes are not failing, its queue is not
full). Each check has :attr:`Probes.timeout` seconds (0.5: a frozen store makes the
gateway not ready within a second, inside a load balancer's usual one-second probe
timeout); all run together. Not ready is
``503`` with every check's state, the failing ones named; the answer carries no
secret and no address — the causes are logged on ``roam.probes``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.audit import AuditTrail
from gateway.config import Config
from gateway.errors import KeyError_, StoreError
from gateway.keys import KeyRing
from gateway.store import Store
from gateway.store.base import Kind

__all__ = ["OK", "Probes"]

log = logging.getLogger("roam.probes")

OK = "ok"
_NO_STORE = {"Cache-Control": "no-store"}
_PROBE_ID = "-readyz-"  # a key read and never written: the store must answer "none"


class Probes:
    def __init__(self, *, config: Config, store: Store, keys: KeyRing, audit: AuditTrail,
                 timeout: float = 0.5) -> None:
        self.config = config
        self.store = store
        self.keys = keys
        self.audit = audit
        self.timeout = timeout

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=_NO_STORE)

    async def readyz(self, request: Request) -> Response:
        checks = await self.run()
        failing = sorted(name for name, state in checks.items() if state != OK)
        if failing:
            return JSONResponse({"status": "not ready", "failing": failing, "checks": checks},
                                status_code=503, headers=_NO_STORE)
        return JSONResponse({"status": "ready", "checks": checks}, headers=_NO_STORE)

    async def run(self) -> dict[str, str]:
        """Every check's state: ``ok`` or what is wrong, in a few words."""
        named: dict[str, Callable[[], Awaitable[str]]] = {
            "store": self._store, "keys": self._keys, "config": self._config,
            "audit": self._audit}
        results: dict[str, str] = {}

        async def one(name: str, check: Callable[[], Awaitable[str]]) -> None:
            with anyio.move_on_after(self.timeout):
                results[name] = await check()
                return
            log.warning("readiness check timed out", extra={"check": name})
            results[name] = "timed out"

        async with anyio.create_task_group() as group:
            for name, check in named.items():
                group.start_soon(one, name, check)
        return {name: results[name] for name in named}

    async def _store(self) -> str:
        try:
            await self.store.find_text(Kind.SESSION, _PROBE_ID)
        except StoreError as error:
            log.warning("readiness: store unreachable", extra={"cause": str(error)})
            return "unreachable"
        return OK

    async def _keys(self) -> str:
        needed = sorted(self.config.signing_algs)
        missing = []
        for alg in needed:
            try:
                self.keys.signing_key(alg)
            except KeyError_:
                missing.append(alg)
        return f"no signing key for {', '.join(missing)}" if missing else OK

    async def _config(self) -> str:
        return OK  # loaded and checked whole at start: a bad one stops the process there

    async def _audit(self) -> str:
        return await self.audit.problem() or OK
