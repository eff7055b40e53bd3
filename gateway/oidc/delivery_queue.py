"""Back-channel logout deliveries in the store, so that none is lost with a process.

Every delivery is a record (kind ``bcl_delivery``) written before the logout answers.
While it is pending it sits in one index (``find_by_grant(PENDING)``) and carries a
lease: the process working on it (``owner``) holds it until ``lease_until``, which it
moves forward each time it writes the delivery back (after each failed attempt, to the
next attempt plus a lease). A process that stops — SIGKILL, a crash, a lost machine —
stops moving it, and once the lease has run out any live process claims the delivery
with a compare-and-swap on the record's version and carries on from the state stored:
attempts, first attempt (``retry_for`` counts from it across processes), next attempt.
A process that stops on purpose (SIGTERM) releases its leases, so another takes over at
once. A finished delivery leaves the index and stays, with its outcome, for an operator.

The store's errors end here: a store outage must not stop an RP from being told, so a
failed write is logged and the delivery carries on from memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.errors import RoamError
from gateway.ids import new_id
from gateway.oidc.delivery import RECORD_TTL, Delivery
from gateway.store.base import Kind, Store

__all__ = ["PENDING", "DeliveryQueue"]

PENDING = "bcl:pending"
"""The index of unfinished deliveries: a grant id that no grant has."""

log = logging.getLogger("roam.backchannel")


class DeliveryQueue:
    def __init__(self, store: Store, *, node: str, lease: float,
                 clock: Callable[[], float] = time.time) -> None:
        if lease <= 0:
            raise ValueError("the lease must be positive")
        self.store = store
        self.node = node
        self.lease = lease
        self.clock = clock

    async def add(self, delivery: Delivery) -> str | None:
        """Record a new delivery, held by this process; its version (None: not recorded,
        the store failed)."""
        self._hold(delivery)
        version = new_id(12)
        try:
            await self.store.upsert(Kind.BACKCHANNEL_DELIVERY, delivery.jti,
                                    _pending(delivery), RECORD_TTL, version=version)
        except RoamError as error:
            _cannot(delivery, "record", error)
            return None
        return version

    async def keep(self, delivery: Delivery, version: str | None) -> str | None:
        """Write the delivery's state back and hold it until its next attempt plus a
        lease; the new version, or None if another process holds it now."""
        self._hold(delivery)
        return await self._swap(delivery, version)

    async def release(self, delivery: Delivery, version: str | None) -> None:
        """Let any process take the delivery over at once (this one is stopping)."""
        delivery.owner, delivery.lease_until = "", 0.0
        await self._swap(delivery, version)

    async def finish(self, delivery: Delivery) -> None:
        """The delivery's outcome, for an operator; it leaves the pending index."""
        try:
            await self.store.upsert(Kind.BACKCHANNEL_DELIVERY, delivery.jti,
                                    delivery.to_dict(), RECORD_TTL)
            await self.store.forget(PENDING, Kind.BACKCHANNEL_DELIVERY, delivery.jti)
        except RoamError as error:
            _cannot(delivery, "record", error)

    async def claim_expired(self) -> list[tuple[Delivery, str]]:
        """Every pending delivery whose lease has run out, now held by this process
        (one process wins each, however many try at once)."""
        now = self.clock()
        claimed: list[tuple[Delivery, str]] = []
        for kind, jti, payload in await self.store.find_by_grant(PENDING):
            if kind != Kind.BACKCHANNEL_DELIVERY:
                continue
            if Delivery.from_dict(payload).lease_until > now:
                continue  # held: its owner is alive, or was until recently
            found = await self.store.find_versioned(Kind.BACKCHANNEL_DELIVERY, jti)
            if found is None or not found.version:
                continue  # finished meanwhile
            delivery = Delivery.from_dict(found.payload)
            if delivery.status != "pending" or delivery.lease_until > now:
                continue
            previous = delivery.owner
            version = await self.keep(delivery, found.version)
            if version is not None:
                log.warning("backchannel logout: delivery taken over",
                            extra={"jti": jti, "client": delivery.client_id,
                                   "from": previous or "(released)"})
                claimed.append((delivery, version))
        return claimed

    def _hold(self, delivery: Delivery) -> None:
        delivery.owner = self.node
        delivery.lease_until = max(self.clock(), delivery.next_attempt) + self.lease

    async def _swap(self, delivery: Delivery, version: str | None) -> str | None:
        if version is None:
            return await self.add(delivery) if delivery.owner else None
        new = new_id(12)
        try:
            written = await self.store.swap(Kind.BACKCHANNEL_DELIVERY, delivery.jti,
                                            _pending(delivery), RECORD_TTL,
                                            expected=version, version=new)
        except RoamError as error:
            _cannot(delivery, "update", error)
            return version  # still this process's, as far as it knows
        return new if written else None


def _pending(delivery: Delivery) -> dict[str, object]:
    return {**delivery.to_dict(), "grant_id": PENDING}


def _cannot(delivery: Delivery, step: str, error: RoamError) -> None:
    log.warning("backchannel logout: cannot write the delivery to the store",
                extra={"jti": delivery.jti, "client": delivery.client_id, "step": step,
                       "cause": str(error)})
