"""A person's claims kept once, not in every grant (gateway/oidc/people.py)."""

from __future__ import annotations

from dataclasses import replace

from gateway.digests import KeyedDigests
from gateway.identity import Identity, PersonKind
from gateway.oidc.grant import Grant
from gateway.oidc.people import People
from gateway.sessions import Session
from gateway.store.base import Kind
from gateway.store.memory import MemoryStore

CLAIMS = {"name": "张三", "id_number": "430102199001010016", "phone_number": "13800000001"}
IDENTITY = Identity(subject="c-0001", kind=PersonKind.NATURAL, acr="L2", amr=("pwd",),
                    auth_time=1, region="430102", claims=CLAIMS)


def grant(**changes: object) -> Grant:
    made = Grant(grant_id="g1", client_id="changsha-gov", identity=IDENTITY, scope="openid",
                 sid="s1", expires_at=10)
    return replace(made, **changes)  # type: ignore[arg-type]


def test_a_grant_record_keeps_who_and_how_but_no_claims() -> None:
    stored = grant(offline=True, person="ref").record()
    assert stored["identity"]["claims"] == {}
    assert stored["identity"]["agent"] is None
    assert stored["identity"]["subject"] == "c-0001"
    assert stored["identity"]["acr"] == "L2"
    assert Grant.from_dict(stored).person == "ref"
    assert "430102199001010016" not in str(stored)


async def test_a_session_grant_reads_the_claims_of_its_session() -> None:
    people = People(MemoryStore(), KeyedDigests.ephemeral(), ttl=60)
    bare = Grant.from_dict(grant().record())
    session = Session(sid="s1", identity=IDENTITY, created=0, last_seen=0)
    assert (await people.fill(bare, session)).identity.claims == CLAIMS
    # another person's session (never the case for a grant's own sid) lends nothing
    other = Session(sid="s1", identity=replace(IDENTITY, subject="c-0002"), created=0,
                    last_seen=0)
    assert (await people.fill(bare, other)).identity.claims == {}


async def test_a_grant_outliving_its_session_reads_one_person_record() -> None:
    store = MemoryStore()
    people = People(store, KeyedDigests.ephemeral(), ttl=60)
    ref = people.ref(IDENTITY)
    assert ref == people.ref(IDENTITY), "the same claims: the same record"
    assert ref != people.ref(replace(IDENTITY, claims={**CLAIMS, "name": "李四"}))
    assert "430102199001010016" not in ref
    await people.keep(IDENTITY, ref)
    await people.keep(IDENTITY, ref)
    offline = Grant.from_dict(grant(offline=True, person=ref).record())
    assert (await people.fill(offline, None)).identity.claims == CLAIMS
    # a record of another subject under that name (a forged reference) is not used
    forged = replace(offline, identity=replace(offline.identity, subject="c-0002"))
    assert (await people.fill(forged, None)).identity.claims == {}
    await store.destroy(Kind.PERSON, ref)
    assert (await people.fill(offline, None)).identity.claims == {}
