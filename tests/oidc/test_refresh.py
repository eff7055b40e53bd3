"""Refresh tokens rotated by compare-and-swap on their grant (gateway/oidc/refresh.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
import pytest
from authlib.integrations.base_client import OAuthError

from gateway.config import SessionSection
from gateway.identity import Identity, PersonKind
from gateway.oidc.active import ActiveTokens
from gateway.oidc.grant import Grant
from gateway.oidc.refresh import NEVER, Description, RefreshTokens, token_digest
from gateway.sessions import Session, SessionManager
from gateway.store.base import VERSION_HISTORY, Kind
from gateway.store.memory import MemoryStore
from tests.support.gateway import SECRETS
from tests.support.rp import full_login

AUTH = ("changsha-gov", SECRETS["changsha-gov"])


def refresh(gateway_url: str, token: str, **extra: str) -> httpx.Response:
    return httpx.post(f"{gateway_url}/token", auth=AUTH,
                      data={"grant_type": "refresh_token", "refresh_token": token, **extra})


# --- through the token endpoint ------------------------------------------------------------


def test_concurrent_refresh_with_one_token_succeeds_once_and_ends_the_grant(
        gateway_url: str, browser: httpx.Client) -> None:
    _, token, _ = full_login(gateway_url, browser)

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: refresh(gateway_url, token["refresh_token"]),
                                range(16)))
    winners = [a.json() for a in answers if a.status_code == 200]
    assert len(winners) == 1
    assert all(a.json()["error"] == "invalid_grant" for a in answers if a.status_code != 200)
    # the losers held a copy of a token that was already used: the grant ends
    assert refresh(gateway_url, winners[0]["refresh_token"]).json()["error"] == "invalid_grant"


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

    def __init__(self, *, offline: bool = False) -> None:
        self.clock = Clock()
        self.store = MemoryStore(clock=self.clock)
        sessions = SessionManager(self.store, SessionSection(idle_timeout=IDLE),
                                  issuer="http://127.0.0.1:1", clock=self.clock)
        self.refresh = RefreshTokens(ActiveTokens(self.store, sessions), clock=self.clock)
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
        assert rotated is not None
        assert rotated == (self.grant, "advanced")
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
    assert await rig.refresh.rotate(presented, rig.refresh.next_token(presented)) == (
        rig.grant, "unknown")
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
