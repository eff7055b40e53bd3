"""Registered clients in the store, and every process's copy of them.

A registered client is one record (``Kind.CLIENT``) in one index (the grant index
``registered-clients``), written by compare-and-swap on a version that changes with every
write, so two management calls with the same registration access token cannot both win.
Every change also counts up one counter (``Kind.CLIENT_CHANGES``); each process reads it
every ``reload_interval`` seconds and, when it moved, reads the clients again — a change
reaches every process within that interval (0.5 s by default), a deleted client vanishes
from every registry and its tokens stop being active. A client id this process does not
know is looked up once in the store before it is refused (``ensure``), so a client that
registered through another process a moment ago is served at once.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable

import anyio

from gateway.errors import StoreError
from gateway.oidc.clients import Client, ClientRegistry
from gateway.oidc.registered import RegisteredClient
from gateway.store.base import Kind, Store

__all__ = ["CLIENT_TTL", "ClientDirectory", "Stored"]

CLIENT_TTL = 20 * 365 * 86400  # a registration lasts until it is deleted
INDEX = "registered-clients"  # the grant index naming every registered client
CHANGES = "all"
FULL_RELOAD = 60.0  # seconds: read everything again even if the counter did not move
TOMBSTONE_TTL = 60
_CLIENT_ID = re.compile(r"^rp-[A-Za-z0-9_-]{22}$")  # what registration makes

log = logging.getLogger("roam.registration")


class Stored:
    """A record as read, with the version a write over it must name."""

    __slots__ = ("client", "version")

    def __init__(self, client: RegisteredClient, version: str) -> None:
        self.client = client
        self.version = version


def served(record: RegisteredClient) -> Client | None:
    """The client the gateway serves for ``record`` (None: not active, or a record this
    gateway's config no longer accepts — logged, and the other clients still served)."""
    try:
        config = record.config()
    except ValueError as error:  # pydantic's ValidationError: a claim or scope now unknown
        log.error("registered client not served", extra={
            "client_id": record.client_id, "error": str(error).splitlines()[0]})
        return None
    if config is None:
        return None
    return Client(config, secret_digests=record.secret_digests)


class ClientDirectory:
    def __init__(self, store: Store, registry: ClientRegistry, *,
                 reload_interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.registry = registry
        self.reload_interval = reload_interval
        self.clock = clock
        self._seen: int | None = None
        self._loaded_at = float("-inf")
        registry.loader = self.ensure

    # --- records ------------------------------------------------------------------------------

    async def load(self, client_id: str) -> Stored | None:
        found = await self.store.find_versioned(Kind.CLIENT, client_id)
        if found is None or found.payload.get("deleted"):
            return None
        return Stored(RegisteredClient.model_validate(found.payload), found.version)

    async def create(self, record: RegisteredClient) -> None:
        if not await self.save(record, None):
            raise StoreError("a registered client with this id exists")  # 128 random bits

    async def save(self, record: RegisteredClient, expected: str | None) -> bool:
        """Write ``record`` over the version read (``None``: only if there is none); False
        if another write came first."""
        if not await self.store.swap(Kind.CLIENT, record.client_id, _payload(record),
                                     CLIENT_TTL, expected=expected, version=_version()):
            return False
        await self._changed(record)
        return True

    async def delete(self, client_id: str, expected: str) -> bool:
        """Remove the client if it is still at ``expected``: a short-lived tombstone
        first (so the same access token cannot also win a concurrent update), then out of
        the index."""
        if not await self.store.swap(Kind.CLIENT, client_id, {"deleted": True},
                                     TOMBSTONE_TTL, expected=expected, version=_version()):
            return False
        await self.store.forget(INDEX, Kind.CLIENT, client_id)
        self.registry.drop(client_id)
        await self.store.incr(Kind.CLIENT_CHANGES, CHANGES, CLIENT_TTL)
        return True

    async def every(self) -> list[RegisteredClient]:
        rows = await self.store.find_by_grant(INDEX)
        records = []
        for kind, client_id, payload in rows:
            if kind != Kind.CLIENT or payload.get("deleted"):
                continue
            try:
                records.append(RegisteredClient.model_validate(payload))
            except ValueError:  # not a record this gateway wrote: skipped, not fatal
                log.error("registered client unreadable", extra={"client_id": client_id})
        return sorted(records, key=lambda r: r.issued_at)

    async def _changed(self, record: RegisteredClient) -> None:
        self._install(record)
        await self.store.incr(Kind.CLIENT_CHANGES, CHANGES, CLIENT_TTL)

    def _install(self, record: RegisteredClient) -> None:
        client = served(record)
        if client is None:
            self.registry.drop(record.client_id)
        else:
            self.registry.put(client)

    # --- every process's copy -----------------------------------------------------------------

    async def ensure(self, client_id: str | None) -> None:
        """Look an unknown client id up in the store once (registered elsewhere just now)."""
        if not client_id or self.registry.get(client_id) is not None \
                or not _CLIENT_ID.match(client_id) or self.registry.is_static(client_id):
            return
        try:
            stored = await self.load(client_id)
        except (StoreError, ValueError):
            return  # the request goes on and is refused as an unknown client
        if stored is not None:
            self._install(stored.client)

    async def refresh(self, *, force: bool = False) -> bool:
        """Read every registered client again if the change counter moved (or ``force``,
        or ``FULL_RELOAD`` passed); True if it did."""
        counted = await self.store.incr(Kind.CLIENT_CHANGES, CHANGES, CLIENT_TTL, by=0)
        now = self.clock()
        if not force and counted.value == self._seen and now - self._loaded_at < FULL_RELOAD:
            return False
        records = await self.every()
        clients = [c for c in map(served, records) if c is not None]
        self.registry.replace_registered(clients)
        self._seen, self._loaded_at = counted.value, now
        return True

    async def run(self) -> None:
        """Follow the store for as long as the process serves."""
        while True:
            try:
                await self.refresh()
            except (StoreError, ValueError) as error:
                log.warning("registered clients not reloaded", extra={"error": str(error)})
            await anyio.sleep(self.reload_interval)


def _payload(record: RegisteredClient) -> dict[str, object]:
    return {**record.model_dump(mode="json"), "grant_id": INDEX}


def _version() -> str:
    return secrets.token_urlsafe(12)
