"""Registered clients in the store (gateway/oidc/client_directory.py) and what reviews do
to them (client_review.py), on every store: two directories stand for two gateway
processes — what one writes, the other serves after its next reload; a write over a stale
version loses; a deleted or pending client is no client."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.config import ClientConfig, RegistrationSection
from gateway.digests import secret_digest
from gateway.oidc.client_directory import ClientDirectory
from gateway.oidc.client_review import ApprovalPolicy, ClientReview, ReviewRefused
from gateway.oidc.clients import ClientRegistry
from gateway.oidc.invites import Invites
from gateway.oidc.registered import RegisteredClient, StoredSecret
from gateway.store.base import Store
from tests.support.stores import Topology

STATIC = ClientConfig.model_validate({
    "client_id": "static-gov", "client_name": "静态应用", "redirect_uris": ["https://a.cn/cb"],
    "client_secret_sha256": "0" * 64})


SECRET = "s3cret"


def record(client_id: str, *, scope: str = "openid profile", claims: list[str] | None = None,
           levels: tuple[str, ...] = ()) -> RegisteredClient:
    now = int(time.time())
    meta = {"client_name": "湘潭市政务服务网", "redirect_uris": ["https://xt.example.cn/cb"],
            "scope": scope, "token_endpoint_auth_method": "client_secret_basic",
            "default_acr_values": list(levels)}
    if claims is not None:
        meta["claims"] = claims
    return ApprovalPolicy(RegistrationSection()).registered(RegisteredClient(
        client_id=client_id, metadata=meta, status="pending", region="430300",
        secrets=(StoredSecret(digest=secret_digest(SECRET)),), issued_at=now,
        updated_at=now))


async def test_what_one_process_writes_the_other_serves_after_a_reload(
        any_store: Store, topology: Topology) -> None:
    here, there = ClientRegistry([STATIC]), ClientRegistry([STATIC])
    writer = ClientDirectory(any_store, here)
    other_store = topology.open()
    reader = ClientDirectory(other_store, there)
    try:
        assert await reader.refresh(force=True)
        await writer.create(record("rp-one"))
        assert here.get("rp-one") is not None  # the writer serves it at once
        assert there.get("rp-one") is None
        assert await reader.refresh()  # the counter moved
        served = there.get("rp-one")
        assert served is not None
        assert served.config.scopes == ("openid", "profile")
        assert served.check_client_secret(SECRET)
        assert not await reader.refresh()  # nothing changed: nothing read

        stored = await writer.load("rp-one")
        assert stored is not None
        moved = stored.client.model_copy(update={"metadata": {
            **stored.client.metadata, "redirect_uris": ["https://xt.example.cn/new"]}})
        assert await writer.save(moved, stored.version)
        assert not await writer.save(moved, stored.version)  # that version is gone
        await reader.refresh()
        moved_there = there.get("rp-one")
        assert moved_there is not None
        assert moved_there.config.redirect_uris == ("https://xt.example.cn/new",)

        latest = await writer.load("rp-one")
        assert latest is not None
        assert not await writer.delete("rp-one", stored.version)  # stale: refused
        assert await writer.delete("rp-one", latest.version)
        assert await writer.load("rp-one") is None
        await reader.refresh()
        assert there.get("rp-one") is None
        assert there.get("static-gov") is not None  # the seed stays
        assert await writer.every() == []
    finally:
        if other_store is not any_store:
            await other_store.close()


async def test_an_unknown_client_is_looked_up_once_before_it_is_refused(
        any_store: Store) -> None:
    here, there = ClientRegistry([]), ClientRegistry([])
    made = "rp-" + "T" * 22  # as registration makes them
    await ClientDirectory(any_store, here).create(record(made))
    ClientDirectory(any_store, there)  # another process, before its first reload
    await there.ensure(made)
    assert there.get(made) is not None
    await there.ensure("rp-" + "N" * 22)
    assert there.get("rp-" + "N" * 22) is None


async def test_a_pending_client_is_no_client_until_approved_and_narrowed(
        any_store: Store) -> None:
    registry = ClientRegistry([])
    directory = ClientDirectory(any_store, registry)
    pending = record("rp-three", scope="openid profile phone id_card", levels=("L3",))
    assert pending.status == "pending"
    assert pending.awaiting() == {"claims": ("phone_number", "id_number"), "levels": ("L3",)}
    await directory.create(pending)
    assert registry.get("rp-three") is None
    review = ClientReview(directory)
    assert [r.client_id for r in await review.waiting()] == ["rp-three"]
    with pytest.raises(ReviewRefused, match="changed its request"):
        await review.approve("rp-three", by="ops-li", reason="看过了",
                             seen=pending.revision - 1)  # what the page showed is old
    with pytest.raises(ReviewRefused, match="reason"):
        await review.approve("rp-three", by="ops-li", reason=" ")
    with pytest.raises(ReviewRefused, match="not asked"):
        await review.approve("rp-three", by="ops-li", reason="ok", claims=["uscc"])
    approved = await review.approve("rp-three", by="ops-li", reason="只需手机号",
                                    claims=["name", "phone_number", "verified_level"],
                                    level="L2")
    assert approved.decisions[-1].decision == "narrowed"
    served = registry.get("rp-three")
    assert served is not None
    assert set(served.config.claims) == {"name", "phone_number", "verified_level"}
    assert served.config.default_acr_values == ()
    assert await review.waiting() == []

    # suspended: gone from every registry; resumed: back as it was (never by an approval)
    await review.suspend("rp-three", by="ops-li", reason="安全检查")
    assert registry.get("rp-three") is None
    with pytest.raises(ReviewRefused, match="resume it first"):
        await review.approve("rp-three", by="ops-li", reason="再批一次")
    assert registry.get("rp-three") is None
    with pytest.raises(ReviewRefused, match="suspended"):
        await review.suspend("rp-three", by="ops-li", reason="again")
    await review.resume("rp-three", by="ops-li", reason="检查完毕")
    assert registry.get("rp-three") is not None


async def test_an_active_client_asking_for_more_keeps_what_it_has(any_store: Store) -> None:
    registry = ClientRegistry([])
    directory = ClientDirectory(any_store, registry)
    await directory.create(record("rp-four"))
    stored = await directory.load("rp-four")
    assert stored is not None
    wider = ApprovalPolicy(RegistrationSection()).extended(stored.client.model_copy(
        update={"metadata": {**stored.client.metadata, "scope": "openid profile id_card"}}))
    assert await directory.save(wider, stored.version)
    served = registry.get("rp-four")
    assert served is not None
    assert "id_number" not in served.config.claims  # waits for an operator
    assert "id_card" in served.config.scopes  # the scope alone releases nothing sensitive
    review = ClientReview(directory)
    assert [r.client_id for r in await review.waiting()] == ["rp-four"]
    refused = await review.reject("rp-four", by="ops-wang", reason="不需要身份证号")
    assert refused.status == "active"
    assert refused.awaiting() == {}
    assert "id_number" not in refused.claims


async def test_a_rotated_secret_works_until_its_overlap_ends() -> None:
    from gateway.oidc.client_directory import served

    now = time.time()
    rotated = record("rp-five").model_copy(update={"secrets": (
        StoredSecret(digest=secret_digest("new")),
        StoredSecret(digest=secret_digest("old"), not_after=int(now) + 2))})
    client = served(rotated)
    assert client is not None
    assert client.check_client_secret("new")
    assert client.check_client_secret("old")
    assert not client.check_client_secret("other")
    await asyncio.sleep(2.1)
    assert not client.check_client_secret("old")
    assert client.check_client_secret("new")


async def test_an_invitation_makes_as_many_clients_as_it_allows_however_many_race(
        any_store: Store) -> None:
    invites = Invites(any_store)
    token, made = await invites.issue("430100", expires_in=60, uses=3, by="test")
    assert made.region == "430100"
    assert await invites.find("not-it") is None
    found = await invites.find(token)
    assert found is not None
    taken = await asyncio.gather(*(invites.take(found) for _ in range(12)))
    assert taken.count(True) == 3
    assert await invites.find(token) is None  # used up
    await invites.give_back(found)  # a registration that failed after its take
    assert await invites.find(token) is not None


async def test_a_record_the_config_no_longer_accepts_does_not_stop_the_others(
        any_store: Store) -> None:
    registry = ClientRegistry([])
    directory = ClientDirectory(any_store, registry)
    await directory.create(record("rp-good"))
    odd = record("rp-odd")
    await directory.create(odd.model_copy(update={
        "metadata": {**odd.metadata, "claims": ["no_such_claim"]},
        "approved_claims": ("no_such_claim",)}))
    fresh = ClientRegistry([])
    assert await ClientDirectory(any_store, fresh).refresh(force=True)
    assert fresh.get("rp-good") is not None
    assert fresh.get("rp-odd") is None
