"""Whether an issued access token is still good (gateway/oidc/active.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gateway.config import ClientConfig, SessionSection
from gateway.digests import KeyedDigests
from gateway.identity import Identity, PersonKind
from gateway.oidc.active import ActiveTokens
from gateway.oidc.clients import ClientRegistry
from gateway.oidc.grant import Grant
from gateway.oidc.people import People
from gateway.oidc.subjects import Subjects
from gateway.sessions import Session, SessionManager
from gateway.store.base import Kind, Store

CLIENT = "changsha-gov"
IDENTITY = Identity(subject="c-0001", kind=PersonKind.NATURAL, acr="L2", amr=("pwd",),
                    auth_time=1, region="430102", claims={"name": "张三"})


class Overlapping:
    """The store, counting how many reads are in flight at once."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.in_flight = 0
        self.most = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _counted(self, call: Any) -> Any:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0)  # a real store's round trip yields here
            return await call
        finally:
            self.in_flight -= 1

    async def find(self, kind: Kind, id: str) -> Any:
        return await self._counted(self.inner.find(kind, id))

    async def find_text(self, kind: Kind, id: str) -> Any:
        return await self._counted(self.inner.find_text(kind, id))


class Rig:
    def __init__(self, store: Store) -> None:
        self.store = Overlapping(store)
        self.sessions = SessionManager(self.store, SessionSection(),  # type: ignore[arg-type]
                                       issuer="http://127.0.0.1:1")
        digests = KeyedDigests.ephemeral()
        client = ClientConfig.model_validate({
            "client_id": CLIENT, "client_name": "长沙", "client_secret_sha256": "0" * 64,
            "redirect_uris": ["https://rp.example/cb"]})
        self.active = ActiveTokens(
            self.store, self.sessions,  # type: ignore[arg-type]
            People(self.store, digests, ttl=3600),  # type: ignore[arg-type]
            Subjects(digests, ClientRegistry([client])))

    async def session(self, sid: str) -> Session:
        now = int(time.time())
        session = Session(sid=sid, identity=IDENTITY, created=now, last_seen=now)
        await self.store.upsert(Kind.SESSION, sid, session.to_dict(), 600)
        return session

    async def grant(self, *, sid: str | None = "sid-1", offline: bool = False) -> Grant:
        grant = Grant(grant_id="g" * 22, client_id=CLIENT, identity=IDENTITY,
                      scope="openid", sid=sid, offline=offline,
                      expires_at=int(time.time()) + 3600)
        await self.store.upsert(Kind.GRANT, grant.grant_id, grant.record(), 3600)
        return grant

    @staticmethod
    def claims(grant: Grant, **changes: Any) -> dict[str, Any]:
        claims = {"gid": grant.grant_id, "sub": IDENTITY.subject, "client_id": CLIENT,
                  "jti": "jti-1", "sid": grant.sid}
        return {**claims, **changes}


async def test_the_grant_the_revocation_list_and_the_session_are_read_at_once(
        any_store: Store) -> None:
    rig = Rig(any_store)
    await rig.session("sid-1")
    grant = await rig.grant()
    found = await rig.active.grant_of_access_token(rig.claims(grant))
    assert found is not None
    assert found.grant_id == grant.grant_id
    assert found.identity.claims == IDENTITY.claims, "the session lends its claims"
    assert rig.store.most == 3, "three reads in flight together: one round trip"


async def test_a_token_is_not_good_once_its_session_or_its_jti_is_gone(
        any_store: Store) -> None:
    rig = Rig(any_store)
    await rig.session("sid-1")
    grant = await rig.grant()
    claims = rig.claims(grant)
    assert await rig.active.grant_of_access_token(claims) is not None
    await rig.store.upsert(Kind.REVOKED_ACCESS_TOKEN, "jti-1", {"grant_id": grant.grant_id}, 60)
    assert await rig.active.grant_of_access_token(claims) is None
    assert await rig.active.grant_of_access_token({**claims, "jti": "jti-2"}) is not None
    await rig.store.destroy(Kind.SESSION, "sid-1")
    assert await rig.active.grant_of_access_token({**claims, "jti": "jti-2"}) is None


async def test_a_token_naming_another_session_is_judged_by_its_grants_own(
        any_store: Store) -> None:
    rig = Rig(any_store)
    await rig.session("sid-other")  # alive, but not the grant's
    grant = await rig.grant(sid="sid-1")  # its own session is gone
    assert await rig.active.grant_of_access_token(rig.claims(grant, sid="sid-other")) is None
    await rig.session("sid-1")
    assert await rig.active.grant_of_access_token(rig.claims(grant, sid="sid-other")) is not None
    assert await rig.active.grant_of_access_token(rig.claims(grant, sid=None)) is not None


async def test_an_offline_grant_outlives_its_session_but_not_its_record(
        any_store: Store) -> None:
    rig = Rig(any_store)
    grant = await rig.grant(offline=True)  # its session never existed or has ended
    assert await rig.active.grant_of_access_token(rig.claims(grant)) is not None
    await rig.store.destroy(Kind.GRANT, grant.grant_id)
    assert await rig.active.grant_of_access_token(rig.claims(grant)) is None


async def test_a_token_of_another_client_or_person_is_not_good(any_store: Store) -> None:
    rig = Rig(any_store)
    await rig.session("sid-1")
    grant = await rig.grant()
    assert await rig.active.grant_of_access_token(
        rig.claims(grant, client_id="xiangtan-gov")) is None
    assert await rig.active.grant_of_access_token(rig.claims(grant, sub="c-0002")) is None
    assert await rig.active.grant_of_access_token(rig.claims(grant, gid="h" * 22)) is None
