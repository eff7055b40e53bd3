"""Logout that reaches every system: RP-initiated, 我的登录, a new person, back-channel."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet

from gateway.app import create_app
from gateway.oidc.backchannel import EVENT
from gateway.store.memory import MemoryStore
from tests.support.gateway import SECRETS, config_on_port, form_field, log_in, query
from tests.support.receiver import Receiver
from tests.support.rp import (
    YUEYANG_CALLBACK,
    authorize_url,
    full_login,
    rp_client,
)
from tests.support.servers import free_port, serve

CHANGSHA_HOME = "http://127.0.0.1:8001/"


@pytest.fixture(scope="module")
def logout_store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture(scope="module")
def gw(receiver: tuple[Receiver, str], logout_store: MemoryStore) -> Iterator[str]:
    _, rp_url = receiver
    port = free_port()
    config = config_on_port(port, clients={
        "changsha-gov": {"backchannel_logout_uri": f"{rp_url}/changsha"},
        "yueyang-gov": {"backchannel_logout_uri": f"{rp_url}/yueyang"},
    })
    with serve(create_app(config, store=logout_store), port) as url:
        yield url


@pytest.fixture
def rp(receiver: tuple[Receiver, str]) -> Receiver:
    """The receiver, emptied for this test."""
    rp, _ = receiver
    rp.tokens.clear()
    rp.status = 200
    return rp


@pytest.fixture
def browser(gw: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw, follow_redirects=False) as client:
        yield client


def login_both(gw: str, browser: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    """Log in at 长沙 (with a password) and 岳阳 (silently); returns both token sets."""
    changsha = login(gw, browser)
    yueyang = rp_client("yueyang-gov", gw)
    url, verifier = authorize_url(yueyang, gw, nonce="n2")
    callback = browser.get(url).headers["location"]
    assert callback.startswith(YUEYANG_CALLBACK)
    token = yueyang.fetch_token(f"{gw}/token", authorization_response=callback,
                                code_verifier=verifier)
    return changsha, dict(token)


def session_is_gone(gw: str, browser: httpx.Client) -> bool:
    url, _ = authorize_url(rp_client("changsha-gov", gw), gw, prompt="none")
    return query(browser.get(url).headers["location"]).get("error") == "login_required"


def check_logout_token(gw: str, token: str, client_id: str, sid: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(httpx.get(f"{gw}/jwks").json())
    decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256"])
    assert decoded.header["typ"] == "logout+jwt"
    claims = decoded.claims
    registry = jwt.JWTClaimsRegistry(iss={"essential": True, "value": gw},
                                     aud={"essential": True, "value": client_id},
                                     iat={"essential": True}, jti={"essential": True})
    registry.validate(claims)
    assert claims["sid"] == sid
    assert claims["sub"] == "c-0001"
    assert claims["events"] == {EVENT: {}}
    assert "nonce" not in claims
    return claims


def id_claims(gw: str, token: dict[str, Any]) -> dict[str, Any]:
    keys = KeySet.import_key_set(httpx.get(f"{gw}/jwks").json())
    return dict(jwt.decode(token["id_token"], keys).claims)


def login(gw: str, browser: httpx.Client, **params: Any) -> dict[str, Any]:
    """A password login at 长沙; returns its token response."""
    return full_login(gw, browser, "changsha-gov", **params)[1]


def test_rp_initiated_logout_ends_everything(gw: str, browser: httpx.Client,
                                             rp: Receiver) -> None:
    changsha, yueyang = login_both(gw, browser)
    sid = id_claims(gw, changsha)["sid"]
    assert id_claims(gw, yueyang)["sid"] == sid  # one session, two RPs
    response = browser.get("/logout", params={
        "id_token_hint": yueyang["id_token"], "client_id": "yueyang-gov",
        "post_logout_redirect_uri": "http://127.0.0.1:8002/", "state": "bye"})
    assert response.status_code == 303
    assert response.headers["location"] == "http://127.0.0.1:8002/?state=bye"
    assert session_is_gone(gw, browser)
    # every RP of the session hears of it, through the back channel
    check_logout_token(gw, rp.wait_for("changsha")[0], "changsha-gov", sid)
    check_logout_token(gw, rp.wait_for("yueyang")[0], "yueyang-gov", sid)
    # and every token issued in the session is dead
    for token, client_id in ((changsha, "changsha-gov"), (yueyang, "yueyang-gov")):
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        assert httpx.get(f"{gw}/userinfo", headers=bearer).status_code == 401
        refresh = httpx.post(f"{gw}/token", data={
            "grant_type": "refresh_token", "refresh_token": token["refresh_token"],
            "client_id": client_id, "client_secret": SECRETS[client_id]},
            auth=(client_id, SECRETS[client_id]) if client_id == "changsha-gov" else None)
        assert refresh.json()["error"] in ("invalid_grant", "invalid_client")
        introspected = httpx.post(f"{gw}/introspect", data={"token": token["access_token"]},
                                  auth=("hunan-data-api", SECRETS["hunan-data-api"]))
        assert introspected.json() == {"active": False}


def test_unregistered_post_logout_redirect_is_refused_and_logs_nobody_out(
        gw: str, browser: httpx.Client, rp: Receiver) -> None:
    changsha = login(gw, browser)
    response = browser.get("/logout", params={
        "id_token_hint": changsha["id_token"],
        "post_logout_redirect_uri": "https://attacker.example/"})
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "参考编号" in response.text
    assert not session_is_gone(gw, browser)
    assert rp.tokens == {}


def test_logout_without_hint_asks_first(gw: str, browser: httpx.Client, rp: Receiver) -> None:
    login(gw, browser)
    page = browser.get("/logout", params={"client_id": "changsha-gov",
                                          "post_logout_redirect_uri": CHANGSHA_HOME})
    assert page.status_code == 200
    assert "确认退出登录" in page.text
    assert not session_is_gone(gw, browser)
    forged = browser.post("/logout", data={"confirm": "yes", "csrf_token": "forged"})
    assert forged.status_code == 400
    assert not session_is_gone(gw, browser)
    done = browser.post("/logout", data={
        "confirm": "yes", "csrf_token": form_field(page.text, "csrf_token"),
        "client_id": "changsha-gov", "post_logout_redirect_uri": CHANGSHA_HOME})
    assert done.status_code == 303
    assert done.headers["location"] == CHANGSHA_HOME
    assert session_is_gone(gw, browser)
    rp.wait_for("changsha")


def test_stale_hint_asks_first(gw: str, browser: httpx.Client, rp: Receiver) -> None:
    old = login(gw, browser)
    browser.get("/logout", params={"id_token_hint": old["id_token"]})
    assert session_is_gone(gw, browser)
    login(gw, browser)  # a new session: the old hint names the previous one
    page = browser.get("/logout", params={"id_token_hint": old["id_token"]})
    assert "确认退出登录" in page.text
    assert not session_is_gone(gw, browser)


def test_hint_for_another_client_is_an_error(gw: str, browser: httpx.Client) -> None:
    changsha = login(gw, browser)
    response = browser.get("/logout", params={"id_token_hint": changsha["id_token"],
                                               "client_id": "yueyang-gov"})
    assert response.status_code == 400
    assert not session_is_gone(gw, browser)


def test_forged_hint_is_an_error(gw: str, browser: httpx.Client) -> None:
    login(gw, browser)
    response = browser.get("/logout", params={"id_token_hint": "eyJhbGciOiJub25lIn0.e30."})
    assert response.status_code == 400
    assert not session_is_gone(gw, browser)


def test_my_logins_lists_systems_and_logs_out_of_all(gw: str, browser: httpx.Client,
                                                     rp: Receiver) -> None:
    login_both(gw, browser)
    page = browser.get("/my/logins")
    assert page.status_code == 200
    assert "长沙市政务服务" in page.text
    assert "岳阳市政务服务" in page.text
    assert "张*" in page.text
    assert "张三" not in page.text
    done = browser.post("/my/logins/logout",
                        data={"csrf_token": form_field(page.text, "csrf_token")})
    assert done.status_code == 200
    assert session_is_gone(gw, browser)
    rp.wait_for("changsha")
    rp.wait_for("yueyang")


def test_another_person_logging_in_logs_the_first_out(gw: str, browser: httpx.Client,
                                                      rp: Receiver) -> None:
    first = login(gw, browser)
    url, _ = authorize_url(rp_client("changsha-gov", gw), gw, prompt="login")
    log_in(browser, url, username="13900000002")
    check_logout_token(gw, rp.wait_for("changsha")[0], "changsha-gov",
                       id_claims(gw, first)["sid"])
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    assert httpx.get(f"{gw}/userinfo", headers=bearer).status_code == 401


def test_login_again_keeps_the_sid_and_updates_auth_time(gw: str,
                                                         browser: httpx.Client) -> None:
    first = login(gw, browser)
    time.sleep(1.1)  # auth_time has one-second resolution
    again = login(gw, browser, prompt="login")
    assert id_claims(gw, again)["sid"] == id_claims(gw, first)["sid"]
    assert id_claims(gw, again)["auth_time"] > id_claims(gw, first)["auth_time"]


def test_refresh_tokens_die_with_the_session_unless_offline(
        gw: str, browser: httpx.Client, logout_store: MemoryStore) -> None:
    offline_client = rp_client("changsha-gov", gw, scope="openid offline_access")
    url, verifier = authorize_url(offline_client, gw, nonce="n")
    offline = dict(offline_client.fetch_token(
        f"{gw}/token", authorization_response=log_in(browser, url), code_verifier=verifier))
    bound_client = rp_client("changsha-gov", gw)
    url, verifier = authorize_url(bound_client, gw, nonce="n")
    bound = dict(bound_client.fetch_token(
        f"{gw}/token", authorization_response=browser.get(url).headers["location"],
        code_verifier=verifier))
    sid = id_claims(gw, bound)["sid"]
    assert id_claims(gw, offline)["sid"] == sid
    import anyio

    anyio.run(logout_store.destroy, "session", sid)  # the idle timeout, without waiting
    with pytest.raises(OAuthError) as dead:
        bound_client.refresh_token(f"{gw}/token", refresh_token=bound["refresh_token"])
    assert dead.value.error == "invalid_grant"
    refreshed = offline_client.refresh_token(f"{gw}/token",
                                             refresh_token=offline["refresh_token"])
    assert refreshed["access_token"]


def test_a_dead_backchannel_endpoint_never_blocks_logout(
        gw: str, browser: httpx.Client, rp: Receiver, logout_store: MemoryStore) -> None:
    rp.status = 503  # the RP's endpoint answers, but fails: retried in the background
    changsha = login(gw, browser)
    response = browser.get("/logout", params={"id_token_hint": changsha["id_token"]})
    assert response.status_code == 200
    assert "您已退出登录" in response.text
    assert session_is_gone(gw, browser)
    rp.wait_for("changsha", count=2)  # a first attempt and at least one retry
    records = [p for (kind, _), (text, *_) in logout_store.snapshot().items()
               if kind == "bcl_delivery" for p in [text]]
    assert records, "the delivery is recorded"
    assert any('"client_id":"changsha-gov"' in r for r in records)
    assert all(changsha["id_token"] not in r for r in records)
