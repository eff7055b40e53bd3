"""One grant per client and session (gateway/oidc/client_grants.py), through a real RP
library against a gateway on a real Redis: what the store holds after a client
re-authorizes over and over, what stays good, what is never brought back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from authlib.integrations.httpx_client import OAuth2Client
from starlette.responses import Response

from gateway.config import SessionSection
from gateway.identity import Identity, PersonKind
from gateway.oidc.client_grants import ClientGrants, LinkAhead
from gateway.oidc.codes import StoredCode
from gateway.oidc.grant import Grant
from gateway.sessions import SessionLink, SessionManager
from gateway.store.base import Kind, Store
from tests.support.gateway import SECRETS
from tests.support.rp import authorize_url, full_login, rp_client

ID_NUMBER = "430102199001010016"  # c-0001's, config/directory.toml
PHONE = "13800000001"
HOPS = 12


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def silent_hop(gateway: str, browser: httpx.Client, client: OAuth2Client,
               **params: str) -> dict[str, Any]:
    """``prompt=none`` with the browser's session, and the code redeemed."""
    url, verifier = authorize_url(client, gateway, prompt="none", **params)
    callback = browser.get(url).headers["location"]
    assert "code=" in callback, callback
    return dict(client.fetch_token(f"{gateway}/token", authorization_response=callback,
                                   code_verifier=verifier))


async def records(raw: aioredis.Redis, prefix: str) -> dict[str, list[bytes]]:
    """The gateway's keys by what they hold: record kinds, and ``grant:`` index sets."""
    found: dict[str, list[bytes]] = {}
    async for key in raw.scan_iter(match=f"{prefix}*"):
        name = key[len(prefix):].decode()
        kind = "index:" + name.split(":")[1].strip("{") if name.startswith("grant:") \
            else name.strip("{}").split(":")[0]
        found.setdefault(kind, []).append(key)
    return found


def userinfo(gateway: str, access_token: str) -> httpx.Response:
    return httpx.get(f"{gateway}/userinfo", headers={"Authorization": f"Bearer {access_token}"})


async def test_a_client_authorizing_again_and_again_keeps_one_grant_and_one_link(
        redis_gateway: str, raw: aioredis.Redis, redis_prefix: str) -> None:
    with httpx.Client(base_url=redis_gateway) as browser:
        client, first, _ = full_login(redis_gateway, browser, scope="openid profile phone")
        tokens = [silent_hop(redis_gateway, browser, client) for _ in range(HOPS)]
    held = await records(raw, redis_prefix)
    counts = Counter({kind: len(keys) for kind, keys in held.items()})
    assert counts[Kind.GRANT] == 1, counts
    assert counts[Kind.SESSION_LINK] == 1, counts
    assert counts[Kind.SESSION] == 1, counts
    # the grant's own index holds the grant only: codes are not in it
    grant_key = held[Kind.GRANT][0]
    gid = grant_key[len(redis_prefix):].decode().strip("{}").partition(":")[2]
    assert await raw.smembers(f"{redis_prefix}grant:{{{gid}}}") == {grant_key}
    # every access token made along the way belongs to it and is still good
    for token in (first, tokens[0], tokens[-1]):
        answer = userinfo(redis_gateway, token["access_token"])
        assert answer.status_code == 200, answer.text
        assert answer.json()["phone_number"] == PHONE  # claims from the session
    # the grant lives no longer than its session can (8 h, not the 14 days of a refresh)
    session_ttl = await raw.pttl(held[Kind.SESSION][0])
    assert 0 < await raw.pttl(grant_key) <= 8 * 3600 * 1000
    assert 0 < await raw.pttl(held[Kind.SESSION_LINK][0]) <= 8 * 3600 * 1000
    assert session_ttl > 0


async def test_personal_data_is_kept_once_per_session_not_in_grants(
        redis_gateway: str, raw: aioredis.Redis, redis_prefix: str) -> None:
    with httpx.Client(base_url=redis_gateway) as browser:
        full_login(redis_gateway, browser, scope="openid profile phone")
        yueyang = rp_client("yueyang-gov", redis_gateway)
        silent_hop(redis_gateway, browser, yueyang)
        offline = rp_client("changsha-gov", redis_gateway,
                            scope="openid profile phone offline_access")
        kept = silent_hop(redis_gateway, browser, offline)
    held = await records(raw, redis_prefix)
    assert len(held[Kind.GRANT]) == 3  # changsha, yueyang, changsha's offline grant
    holding = []
    for kind, keys in held.items():
        for key in keys:
            if kind.startswith("index:"):
                continue
            payload = await raw.hget(key, "p") or await raw.hget(key, "n") or b""
            if ID_NUMBER.encode() in payload or PHONE.encode() in payload:
                holding.append(kind)
    # the session, and the offline grant's person record: no grant, no code
    assert Counter(holding) == Counter({Kind.SESSION: 1, Kind.PERSON: 1}), holding
    # the offline grant reads its claims from its person record
    answer = userinfo(redis_gateway, kept["access_token"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["phone_number"] == PHONE


def test_a_re_authorization_makes_the_previous_refresh_token_stale_not_a_replay(
        redis_gateway: str) -> None:
    with httpx.Client(base_url=redis_gateway) as browser:
        client, first, _ = full_login(redis_gateway, browser)
        second = silent_hop(redis_gateway, browser, client)
    stale = httpx.post(f"{redis_gateway}/token", data={
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=("changsha-gov", SECRETS["changsha-gov"]))
    assert stale.status_code == 400
    assert stale.json()["error"] == "invalid_grant"
    # not taken for a replay: the grant and its current refresh token still work
    assert userinfo(redis_gateway, first["access_token"]).status_code == 200
    fresh = client.refresh_token(f"{redis_gateway}/token",
                                 refresh_token=second["refresh_token"])
    assert userinfo(redis_gateway, fresh["access_token"]).status_code == 200


def test_a_revoked_grant_is_never_brought_back_by_the_next_authorization(
        redis_gateway: str) -> None:
    with httpx.Client(base_url=redis_gateway) as browser:
        client, first, _ = full_login(redis_gateway, browser)
        revoked = httpx.post(f"{redis_gateway}/revoke", data={
            "token": first["refresh_token"], "token_type_hint": "refresh_token"},
            auth=("changsha-gov", SECRETS["changsha-gov"]))
        assert revoked.status_code == 200
        assert userinfo(redis_gateway, first["access_token"]).status_code == 401
        again = silent_hop(redis_gateway, browser, client)
    assert userinfo(redis_gateway, again["access_token"]).status_code == 200
    assert userinfo(redis_gateway, first["access_token"]).status_code == 401
    old = httpx.post(f"{redis_gateway}/token", data={
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=("changsha-gov", SECRETS["changsha-gov"]))
    assert old.json()["error"] == "invalid_grant"
    assert userinfo(redis_gateway, again["access_token"]).status_code == 200


def test_logout_ends_the_one_grant_whatever_number_of_codes_it_had(redis_gateway: str) -> None:
    with httpx.Client(base_url=redis_gateway) as browser:
        client, first, _ = full_login(redis_gateway, browser)
        tokens = [first, *(silent_hop(redis_gateway, browser, client) for _ in range(3))]
        ended = browser.get("/logout", params={
            "id_token_hint": tokens[-1]["id_token"], "client_id": "changsha-gov",
            "post_logout_redirect_uri": "http://127.0.0.1:8001/"})
        assert ended.status_code == 303, ended.text
    for token in tokens:
        assert userinfo(redis_gateway, token["access_token"]).status_code == 401


# The placement itself, on every store: racing authorizations agree on one grant ---------

IDENTITY = Identity(subject="c-0001", kind=PersonKind.NATURAL, acr="L2", amr=("pwd",),
                    auth_time=1, region="430102", claims={"id_number": ID_NUMBER})


def code(n: int, sid: str, until: int) -> StoredCode:
    grant = Grant(grant_id="", client_id="changsha-gov", identity=IDENTITY, scope="openid",
                  sid=sid, until=until)
    return StoredCode(code=f"code-{n}", client_id="changsha-gov", redirect_uri="https://x/cb",
                      scope="openid", code_challenge=None, code_challenge_method=None,
                      grant=grant)


async def test_racing_authorizations_of_one_client_share_one_grant(any_store: Store) -> None:
    sessions = SessionManager(any_store, SessionSection(), issuer="http://127.0.0.1:1")
    placing = ClientGrants(any_store, sessions, code_ttl=60, grace=30)
    sid = (await sessions.start(IDENTITY, Response())).sid
    until = int(time.time()) + 3600
    placed = await asyncio.gather(*(placing.place(code(n, sid, until)) for n in range(20)))
    grants = {p.grant.grant_id for p in placed}
    assert len(grants) == 1
    (gid,) = grants
    links = await sessions.links(sid)
    assert [(link.client_id, link.grant_id) for link in links] == [("changsha-gov", gid)]
    for p in placed:  # every code as stored names that grant
        stored = await any_store.find(Kind.CODE, p.code)
        assert stored is not None
        assert stored["grant"]["grant_id"] == gid
    pending = await any_store.find(Kind.GRANT, gid)
    assert pending is not None
    assert pending["identity"]["claims"] == {}  # the claims are the session's
    # once revoked, the next code gets a grant of its own, and the link follows it
    await any_store.revoke_by_grant(gid)
    after = await placing.place(code(99, sid, until))
    assert after.grant.grant_id != gid
    assert [link.grant_id for link in await sessions.links(sid)] == [after.grant.grant_id]


async def test_a_grant_placed_as_its_session_ends_ends_with_it(any_store: Store) -> None:
    """A logout that read the session's links just before a new grant's link was written
    would miss it: the placement looks for the session once its link is written."""
    sessions = SessionManager(any_store, SessionSection(), issuer="http://127.0.0.1:1")
    placing = ClientGrants(any_store, sessions, code_ttl=60, grace=30)
    placed = await placing.place(code(1, "sid-ended", int(time.time()) + 3600))
    assert await any_store.find(Kind.GRANT, placed.grant.grant_id) is None
    assert await sessions.links("sid-ended") == []


async def test_a_link_read_ahead_is_taken_for_that_link_only(any_store: Store) -> None:
    """``/authorize`` reads the client's link with the session; the placement takes that
    read instead of its own, but only when it is for the same session, client and kind."""
    sessions = SessionManager(any_store, SessionSection(), issuer="http://127.0.0.1:1")
    placing = ClientGrants(any_store, sessions, code_ttl=60, grace=30)
    sid = (await sessions.start(IDENTITY, Response())).sid
    until = int(time.time()) + 3600
    live = "g" * 22  # a live grant no stored link names: only the read-ahead knows it
    await any_store.upsert(Kind.GRANT, live, {"grant_id": live}, 600)
    link = SessionLink(client_id="changsha-gov", grant_id=live, created=0, offline=False,
                       until=until)
    for other in (LinkAhead("sid-other", "changsha-gov", False, link),
                  LinkAhead(sid, "xiangtan-gov", False, link),
                  LinkAhead(sid, "changsha-gov", True, link)):
        placed = await placing.place(code(1, sid, until), other)
        assert placed.grant.grant_id != live, f"{other} is another link's read"
    mine = LinkAhead(sid, "changsha-gov", False, link)
    assert (await placing.place(code(2, sid, until), mine)).grant.grant_id == live


async def test_a_stale_read_ahead_loses_the_swap_and_joins_the_grant(any_store: Store) -> None:
    sessions = SessionManager(any_store, SessionSection(), issuer="http://127.0.0.1:1")
    placing = ClientGrants(any_store, sessions, code_ttl=60, grace=30)
    sid = (await sessions.start(IDENTITY, Response())).sid
    until = int(time.time()) + 3600
    first = await placing.place(code(1, sid, until))
    # read before the first placement wrote its link: "none yet"
    stale = LinkAhead(sid, "changsha-gov", False, None)
    second = await placing.place(code(2, sid, until), stale)
    assert second.grant.grant_id == first.grant.grant_id
    assert [link.grant_id for link in await sessions.links(sid)] == [first.grant.grant_id]
