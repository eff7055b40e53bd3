"""Refresh tokens rotated by compare-and-swap on their grant (gateway/oidc/refresh.py)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
import pytest
from authlib.integrations.base_client import OAuthError

from gateway.config import SessionSection
from gateway.digests import KeyedDigests
from gateway.identity import Identity, PersonKind
from gateway.oidc.active import ActiveTokens
from gateway.oidc.clients import ClientRegistry
from gateway.oidc.grant import Grant
from gateway.oidc.people import People
from gateway.oidc.refresh import (
    NEVER,
    Description,
    RefreshTokens,
    Rotated,
    seal_next,
    token_digest,
    unseal_next,
)
from gateway.oidc.subjects import Subjects
from gateway.sessions import Session, SessionManager
from gateway.store.base import VERSION_HISTORY, Kind
from gateway.store.memory import MemoryStore
from tests.support.gateway import SECRETS
from tests.support.rp import full_login

AUTH = ("changsha-gov", SECRETS["changsha-gov"])
WINDOW = 30  # [tokens] refresh_reuse_interval, as shipped


class Later:
    """The store's clock, moved forward by hand: a reuse window passes without a wait."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skipped


@pytest.fixture(scope="module")
def later() -> Later:
    return Later()


@pytest.fixture(scope="module")
def store(later: Later) -> MemoryStore:
    return MemoryStore(clock=later)


def refresh(gateway_url: str, token: str, **extra: str) -> httpx.Response:
    return httpx.post(f"{gateway_url}/token", auth=AUTH,
                      data={"grant_type": "refresh_token", "refresh_token": token, **extra})


# --- through the token endpoint ------------------------------------------------------------


def test_concurrent_copies_of_one_token_all_get_the_same_new_one(
        gateway_url: str, browser: httpx.Client) -> None:
    _, token, _ = full_login(gateway_url, browser)

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: refresh(gateway_url, token["refresh_token"]),
                                range(16)))
    assert [a.status_code for a in answers] == [200] * 16
    new = {a.json()["refresh_token"] for a in answers}
    assert len(new) == 1, "one rotation; the other copies got its token"
    # the access tokens are each their own, and all good
    assert len({a.json()["access_token"] for a in answers}) == 16
    following = refresh(gateway_url, new.pop())
    assert following.status_code == 200, "no copy ended the grant"


def test_a_retry_within_the_window_keeps_the_grant(gateway_url: str,
                                                   browser: httpx.Client) -> None:
    client, token, _ = full_login(gateway_url, browser)
    first = client.refresh_token(f"{gateway_url}/token", refresh_token=token["refresh_token"])
    # the RP never saw that answer (a timeout) and sends the old token again
    retry = client.refresh_token(f"{gateway_url}/token", refresh_token=token["refresh_token"])
    assert retry["refresh_token"] == first["refresh_token"]
    assert retry["access_token"] != first["access_token"]
    userinfo = httpx.get(f"{gateway_url}/userinfo",
                         headers={"Authorization": f"Bearer {retry['access_token']}"})
    assert userinfo.status_code == 200
    onward = client.refresh_token(f"{gateway_url}/token", refresh_token=retry["refresh_token"])
    assert onward["refresh_token"] != retry["refresh_token"]


def test_a_replay_after_the_window_ends_the_grant(gateway_url: str, browser: httpx.Client,
                                                  later: Later) -> None:
    client, token, _ = full_login(gateway_url, browser)
    first = client.refresh_token(f"{gateway_url}/token", refresh_token=token["refresh_token"])
    later.skipped += WINDOW + 1
    replay = refresh(gateway_url, token["refresh_token"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert refresh(gateway_url, first["refresh_token"]).json()["error"] == "invalid_grant"
    gone = httpx.get(f"{gateway_url}/userinfo",
                     headers={"Authorization": f"Bearer {first['access_token']}"})
    assert gone.status_code == 401


def test_an_older_token_within_the_window_still_ends_the_grant(gateway_url: str,
                                                               browser: httpx.Client) -> None:
    client, token, _ = full_login(gateway_url, browser)
    first = client.refresh_token(f"{gateway_url}/token", refresh_token=token["refresh_token"])
    second = client.refresh_token(f"{gateway_url}/token", refresh_token=first["refresh_token"])
    # the first token was rotated two steps ago: a copy someone else holds
    assert refresh(gateway_url, token["refresh_token"]).json()["error"] == "invalid_grant"
    assert refresh(gateway_url, second["refresh_token"]).json()["error"] == "invalid_grant"


def test_the_store_keeps_digests_never_refresh_tokens(gateway_url: str, browser: httpx.Client,
                                                      store: MemoryStore) -> None:
    _, token, _ = full_login(gateway_url, browser)
    rotated = refresh(gateway_url, token["refresh_token"]).json()
    held = repr(store.snapshot())
    for issued in (token["refresh_token"], rotated["refresh_token"]):
        assert issued.partition(".")[2] not in held
    assert token_digest(rotated["refresh_token"]) in held


def test_a_forged_secret_on_a_real_grant_changes_nothing(gateway_url: str,
                                                         browser: httpx.Client,
                                                         store: MemoryStore) -> None:
    _, token, _ = full_login(gateway_url, browser)
    description = Description.of(token["refresh_token"])
    assert description is not None
    before = store.snapshot()
    forged = refresh(gateway_url, description.token())  # the same description, a new secret
    assert forged.status_code == 400
    assert forged.json()["error"] == "invalid_grant"
    assert store.snapshot() == before, "a guess must not revoke someone else's grant"
    assert refresh(gateway_url, token["refresh_token"]).status_code == 200


@pytest.mark.parametrize("token", ["", "no-dot", "a.b", "x" * 22 + "." + "y" * 10,
                                   "x" * 22 + ".." + "y" * 43, "中" * 22 + "." + "y" * 43,
                                   "eyJhIjoxfQ" + "A" * 10 + "." + "y" * 43])
def test_malformed_refresh_tokens_are_invalid_grant(gateway_url: str, store: MemoryStore,
                                                    token: str) -> None:
    before = store.snapshot()
    answer = refresh(gateway_url, token)
    assert answer.status_code == 400
    assert answer.json()["error"] in {"invalid_grant", "invalid_request"}
    assert store.snapshot() == before


def test_a_narrowed_refresh_keeps_the_grant_scope(gateway_url: str,
                                                  browser: httpx.Client) -> None:
    _, token, _ = full_login(gateway_url, browser)
    full = set(token["scope"].split())
    assert full > {"openid"}
    narrowed = refresh(gateway_url, token["refresh_token"], scope="openid").json()
    assert narrowed["scope"] == "openid"
    # RFC 6749 §6: the new refresh token has the scope of the one it replaced
    widened_back = refresh(gateway_url, narrowed["refresh_token"]).json()
    assert set(widened_back["scope"].split()) == full


def test_reuse_is_recognised_for_the_last_rotations_only(gateway_url: str,
                                                         browser: httpx.Client) -> None:
    client, token, _ = full_login(gateway_url, browser)
    chain = [token["refresh_token"]]
    for _ in range(VERSION_HISTORY + 1):
        chain.append(client.refresh_token(f"{gateway_url}/token",
                                          refresh_token=chain[-1])["refresh_token"])
    # too old to be remembered: refused, but it cannot end the grant
    with pytest.raises(OAuthError) as old:
        client.refresh_token(f"{gateway_url}/token", refresh_token=chain[0])
    assert old.value.error == "invalid_grant"
    current = client.refresh_token(f"{gateway_url}/token", refresh_token=chain[-1])
    # remembered: a replay, and the grant ends
    with pytest.raises(OAuthError):
        client.refresh_token(f"{gateway_url}/token", refresh_token=chain[2])
    with pytest.raises(OAuthError):
        client.refresh_token(f"{gateway_url}/token", refresh_token=current["refresh_token"])


# --- when the session is looked up ---------------------------------------------------------

IDENTITY = Identity(subject="c-0001", kind=PersonKind.NATURAL, acr="L2", amr=("pwd",),
                    auth_time=1_000, region="430102")
IDLE = 1800


class Clock:
    def __init__(self) -> None:
        self.now = 100_000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    """A session, a grant made in it and its current refresh token, on a fake clock."""

    def __init__(self, *, offline: bool = False, reuse_interval: float = 0) -> None:
        self.clock = Clock()
        self.store = MemoryStore(clock=self.clock)
        sessions = SessionManager(self.store, SessionSection(idle_timeout=IDLE),
                                  issuer="http://127.0.0.1:1", clock=self.clock)
        digests = KeyedDigests.ephemeral()
        people = People(self.store, digests, ttl=3600)
        subjects = Subjects(digests, ClientRegistry(()))  # refreshes never tell a sub
        self.refresh = RefreshTokens(ActiveTokens(self.store, sessions, people, subjects),
                                     reuse_interval=reuse_interval, clock=self.clock)
        now = int(self.clock.now)
        self.session = Session(sid="sid-1", identity=IDENTITY, created=now, last_seen=now)
        self.grant = Grant(grant_id="g" * 22, client_id="changsha-gov", identity=IDENTITY,
                           scope="openid", sid="sid-1", offline=offline)
        self.token = self.refresh.first(self.grant)

    async def start(self) -> None:
        await self.store.upsert(Kind.SESSION, "sid-1", self.session.to_dict(), IDLE)
        await self.store.upsert(Kind.GRANT, self.grant.grant_id, self.grant.to_dict(), 86400,
                                version=token_digest(self.token))

    async def present(self) -> tuple[int | None, bool]:
        """The session deadline the next token would carry (None: refused), and whether
        the session was looked up (then a touch is due)."""
        presented, touch = await self.refresh.present(self.token)
        if presented is None:
            return None, False
        return presented.description.session_until, touch is not None

    async def rotate(self) -> None:
        presented, touch = await self.refresh.present(self.token)
        assert presented is not None
        new = self.refresh.next_token(presented)
        rotated = await self.refresh.rotate(presented, new)
        assert rotated == Rotated(self.grant, "advanced", new)
        if touch is not None:
            await touch()
        self.token = new

    async def session_vanishes(self) -> None:
        """As when it runs out of time: no logout, so its grants are still there."""
        await self.store.destroy(Kind.SESSION, "sid-1")


async def test_the_first_refresh_looks_the_session_up_and_remembers_until_when() -> None:
    rig = Rig()
    await rig.start()
    await rig.session_vanishes()
    assert await rig.present() == (None, False)

    rig = Rig()
    await rig.start()
    assert await rig.present() == (rig.session.last_seen + IDLE, True)


async def test_within_half_an_idle_timeout_no_lookup_is_made() -> None:
    rig = Rig()
    await rig.start()
    await rig.rotate()  # checked: the session lives at least until now + IDLE
    await rig.session_vanishes()
    rig.clock.now += IDLE / 2 - 5
    # skipped: nothing but a logout could end the session, and logout revokes the grant
    assert await rig.present() == (rig.session.last_seen + IDLE, False)
    rig.clock.now += 10
    assert await rig.present() == (None, False), "looked up again: gone"


async def test_an_rp_refreshing_every_half_idle_timeout_keeps_the_session() -> None:
    rig = Rig()
    await rig.start()
    for _ in range(8):  # four idle timeouts in all
        await rig.rotate()
        rig.clock.now += IDLE / 2 - 1
    assert await rig.refresh.active.sessions.find("sid-1") is not None


async def test_the_absolute_timeout_bounds_the_skip() -> None:
    rig = Rig()
    rig.session = Session(sid="sid-1", identity=IDENTITY, created=int(rig.clock.now) - 28000,
                          last_seen=int(rig.clock.now))
    await rig.start()
    assert await rig.present() == (rig.session.created + 28800, True)


async def test_offline_grants_never_look_the_session_up() -> None:
    rig = Rig(offline=True)
    await rig.start()
    await rig.session_vanishes()
    assert await rig.present() == (NEVER, False)


async def test_a_token_is_current_only_with_its_exact_description() -> None:
    rig = Rig()
    await rig.start()
    description = Description.of(rig.token)
    assert description is not None
    secret = rig.token.partition(".")[2]
    widened = replace(description, scope="openid phone id_number").token()
    tampered = f"{widened.partition('.')[0]}.{secret}"
    presented, _ = await rig.refresh.present(tampered)
    assert presented is not None, "a description is believed only after the swap"
    rotated = await rig.refresh.rotate(presented, rig.refresh.next_token(presented))
    assert rotated is not None
    assert (rotated.grant, rotated.outcome) == (rig.grant, "unknown")
    assert await rig.refresh.lookup(tampered) is None
    assert await rig.refresh.lookup(rig.token) == (rig.grant, True)


def test_descriptions_round_trip_and_refuse_junk() -> None:
    description = Description("g" * 22, "长沙-gov", "openid profile", None, NEVER)
    token = description.token()
    assert Description.of(token) == description
    assert token != description.token(), "every token has its own secret"
    head, _, secret = token.partition(".")
    for junk in ("", head, f"{head}.", f"{head}.{secret[:-1]}", f"{head}x.{secret}",
                 f"{head}.{secret}.x",
                 "WyJhIiwiYiIsImMiLG51bGwsdHJ1ZV0." + secret,  # ["a","b","c",null,true]
                 "WyJhIiwiYiIsImMiLG51bGxd." + secret,  # four fields
                 "eyJhIjoxLCJiIjoyLCJjIjozfQ." + secret):  # an object
        assert Description.of(junk) is None, junk


# --- the reuse window, unit by unit ----------------------------------------------------------


async def test_without_a_window_a_second_use_is_retired() -> None:
    rig = Rig(reuse_interval=0)
    await rig.start()
    presented, _ = await rig.refresh.present(rig.token)
    assert presented is not None
    first = await rig.refresh.rotate(presented, rig.refresh.next_token(presented))
    again = await rig.refresh.rotate(presented, rig.refresh.next_token(presented))
    assert (first and first.outcome, again and again.outcome) == ("advanced", "retired")


async def test_a_repeat_gets_the_first_use_s_token_and_the_store_cannot_read_it() -> None:
    rig = Rig(reuse_interval=WINDOW)
    await rig.start()
    presented, _ = await rig.refresh.present(rig.token)
    assert presented is not None
    mine = rig.refresh.next_token(presented)
    first = await rig.refresh.rotate(presented, mine)
    assert first == Rotated(rig.grant, "advanced", mine)
    again = await rig.refresh.rotate(presented, rig.refresh.next_token(presented))
    assert again == Rotated(rig.grant, "repeated", mine)
    held = repr(rig.store.snapshot()) + repr(rig.store._records)  # memo included
    assert mine.partition(".")[2] not in held
    rig.clock.now += WINDOW
    late = await rig.refresh.rotate(presented, rig.refresh.next_token(presented))
    assert late is not None
    assert late.outcome == "retired"


def test_a_sealed_token_opens_only_with_the_token_it_replaced() -> None:
    old, new = Description("g" * 22, "c", "openid", None, NEVER).token(), "n" * 40
    memo = seal_next(old, new, "g" * 22)
    assert unseal_next(old, memo, "g" * 22) == new
    assert unseal_next(old + "x", memo, "g" * 22) is None
    assert unseal_next(old, memo, "h" * 22) is None, "bound to its grant"
    tampered = memo[:-2] + ("A" if memo[-2] != "A" else "B") + memo[-1]
    assert unseal_next(old, tampered, "g" * 22) is None
    assert unseal_next(old, "not base64 !", "g" * 22) is None
    assert seal_next(old, new, "g" * 22) != memo, "a fresh nonce each time"
