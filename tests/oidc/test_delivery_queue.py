"""The store-backed queue of back-channel deliveries (gateway/oidc/delivery_queue.py), on
both stores: leases, take-overs with one winner, hand-over, and the pending index kept
to what is unfinished."""

from __future__ import annotations

import asyncio

import pytest

from gateway.oidc.delivery import Delivery
from gateway.oidc.delivery_queue import PENDING, DeliveryQueue
from gateway.store import Store
from gateway.store.base import Kind
from tests.support.stores import FakeClock

LEASE = 10.0


def queue(any_store: Store, clock: FakeClock, node: str) -> DeliveryQueue:
    return DeliveryQueue(any_store, node=node, lease=LEASE, clock=clock)


def delivery(jti: str, now: float) -> Delivery:
    return Delivery(jti=jti, client_id="changsha-gov", sid="s1", uri="http://127.0.0.1:9/b",
                    sub="c-0001", created=now, updated=now, next_attempt=now)


async def test_a_held_delivery_is_taken_over_only_once_its_lease_ran_out(
        any_store: Store, clock: FakeClock) -> None:
    a, b = queue(any_store, clock, "a:1"), queue(any_store, clock, "b:2")
    assert await a.add(delivery("d1", clock.now)) is not None
    assert await b.claim_expired() == []
    clock.now += LEASE + 1
    [(taken, version)] = await b.claim_expired()
    assert (taken.jti, taken.owner) == ("d1", "b:2")
    assert taken.lease_until == clock.now + LEASE
    assert await a.claim_expired() == [], "b holds it now"
    assert version


async def test_the_old_holder_learns_it_lost_the_delivery(any_store: Store,
                                                         clock: FakeClock) -> None:
    a, b = queue(any_store, clock, "a:1"), queue(any_store, clock, "b:2")
    mine = delivery("d1", clock.now)
    version = await a.add(mine)
    clock.now += LEASE + 1
    assert await b.claim_expired()
    mine.attempts, mine.next_attempt = 1, clock.now + 2
    assert await a.keep(mine, version) is None


async def test_concurrent_claims_have_one_winner(any_store: Store, clock: FakeClock) -> None:
    await queue(any_store, clock, "dead:0").add(delivery("d1", clock.now))
    clock.now += LEASE + 1
    claims = await asyncio.gather(*(queue(any_store, clock, f"n:{i}").claim_expired()
                                    for i in range(8)))
    assert sorted(len(c) for c in claims) == [0] * 7 + [1]


async def test_a_released_delivery_is_taken_over_at_once(any_store: Store,
                                                        clock: FakeClock) -> None:
    a, b = queue(any_store, clock, "a:1"), queue(any_store, clock, "b:2")
    mine = delivery("d1", clock.now)
    version = await a.add(mine)
    mine.attempts, mine.first_attempt, mine.next_attempt = 2, clock.now, clock.now + 4
    version = await a.keep(mine, version)
    await a.release(mine, version)
    [(taken, _)] = await b.claim_expired()
    # the schedule goes on where it was: attempts, first attempt, next attempt
    assert (taken.attempts, taken.first_attempt, taken.next_attempt) == (
        2, mine.first_attempt, clock.now + 4)
    assert taken.lease_until == clock.now + 4 + LEASE


async def test_a_finished_delivery_leaves_the_pending_index(any_store: Store,
                                                           clock: FakeClock) -> None:
    a = queue(any_store, clock, "a:1")
    mine = delivery("d1", clock.now)
    await a.add(mine)
    await a.add(delivery("d2", clock.now))
    mine.status = "delivered"
    await a.finish(mine)
    assert [jti for _, jti, _ in await any_store.find_by_grant(PENDING)] == ["d2"]
    kept = await any_store.find(Kind.BACKCHANNEL_DELIVERY, "d1")
    assert kept is not None
    assert kept["status"] == "delivered", "the outcome stays for an operator"
    clock.now += LEASE + 1
    assert [d.jti for d, _ in await a.claim_expired()] == ["d2"]


def test_a_lease_must_be_positive(any_store: Store, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="lease"):
        DeliveryQueue(any_store, node="a:1", lease=0, clock=clock)
