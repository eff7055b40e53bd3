"""Every error the foundation promises: right format, right status, and nothing changed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from authlib.integrations.base_client import OAuthError

from gateway.store.memory import MemoryStore
from tests.support.gateway import SECRETS, log_in, query
from tests.support.rp import (
    CHANGSHA_CALLBACK,
    MINIAPP_CALLBACK,
    authorize_url,
    full_login,
    rp_client,
)


@pytest.fixture
def unchanged(store: MemoryStore) -> Iterator[None]:
    """The request under test must leave the store exactly as it found it."""
    before = store.snapshot()
    yield
    assert store.snapshot() == before


def authorize(browser: httpx.Client, **params: str) -> httpx.Response:
    base = {"response_type": "code", "client_id": "changsha-gov",
            "redirect_uri": CHANGSHA_CALLBACK, "scope": "openid", "state": "st-1",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256"}
    base.update(params)
    return browser.get("/authorize", params={k: v for k, v in base.items() if v != "-"})


def assert_error_page(response: httpx.Response) -> None:
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert "参考编号" in response.text
    assert 'id="ref"' in response.text


# --- /authorize: errors that must never redirect ---------------------------------------


def test_unknown_client_gets_error_page(browser: httpx.Client, unchanged: None) -> None:
    response = authorize(browser, client_id="no-such-client")
    assert_error_page(response)
    assert "未知的应用" in response.text


def test_missing_client_id_gets_error_page(browser: httpx.Client, unchanged: None) -> None:
    assert_error_page(authorize(browser, client_id="-"))


@pytest.mark.parametrize("redirect_uri", [
    "http://127.0.0.1:8001/callback/evil",
    "http://127.0.0.1:8001/callback?x=1",
    "https://attacker.example/callback",
    "-",
])
def test_unregistered_redirect_uri_gets_error_page(browser: httpx.Client, unchanged: None,
                                                    redirect_uri: str) -> None:
    response = authorize(browser, redirect_uri=redirect_uri)
    assert_error_page(response)
    assert "attacker" not in response.headers.get("location", "")


# --- /authorize: errors that go back to the client -----------------------------------


def redirected_error(response: httpx.Response, gateway_url: str) -> dict[str, str]:
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(CHANGSHA_CALLBACK) or location.startswith(MINIAPP_CALLBACK)
    params = query(location)
    assert params["iss"] == gateway_url
    assert params["state"] == "st-1"
    assert params["error_description"]
    assert "code" not in params
    return params


@pytest.mark.parametrize(("params", "error"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"scope": "openid admin"}, "invalid_scope"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": "-"}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"prompt": "none"}, "login_required"),
    ({"prompt": "none login"}, "invalid_request"),
])
def test_authorization_errors_redirect_with_iss(browser: httpx.Client, gateway_url: str,
                                                unchanged: None, params: dict[str, str],
                                                error: str) -> None:
    assert redirected_error(authorize(browser, **params), gateway_url)["error"] == error


def test_public_client_without_pkce_is_refused(browser: httpx.Client, gateway_url: str,
                                               unchanged: None) -> None:
    response = authorize(browser, client_id="hunan-miniapp", redirect_uri=MINIAPP_CALLBACK,
                         code_challenge="-", code_challenge_method="-")
    params = redirected_error(response, gateway_url)
    assert params["error"] == "invalid_request"
    assert "PKCE" in params["error_description"]


def test_resume_with_unknown_request_gets_error_page(browser: httpx.Client,
                                                     unchanged: None) -> None:
    assert_error_page(browser.get("/authorize/resume", params={"r": "nope"}))
    assert_error_page(browser.get("/login", params={"r": "nope"}))


# --- /login ------------------------------------------------------------------------------


def test_login_without_csrf_token_is_refused(browser: httpx.Client) -> None:
    client = rp_client("changsha-gov", browser.base_url.__str__().rstrip("/"))
    url, _ = authorize_url(client, str(browser.base_url).rstrip("/"))
    login_page = browser.get(browser.get(url).headers["location"])
    rid = login_page.text.split('name="r" value="')[1].split('"')[0]
    response = browser.post("/login", data={"r": rid, "username": "13800000001",
                                            "password": "Roam@2026", "csrf_token": "forged"})
    assert_error_page(response)
    assert "roam_session" not in response.cookies


def test_wrong_password_keeps_the_request(browser: httpx.Client, gateway_url: str) -> None:
    client = rp_client("changsha-gov", gateway_url)
    url, _ = authorize_url(client, gateway_url, state="keep-me")
    login_page = browser.get(browser.get(url).headers["location"])
    csrf = login_page.text.split('name="csrf_token" value="')[1].split('"')[0]
    rid = login_page.text.split('name="r" value="')[1].split('"')[0]
    failed = browser.post("/login", data={"r": rid, "username": "13800000001",
                                          "password": "wrong", "csrf_token": csrf})
    assert failed.status_code == 401
    assert "用户名或密码错误" in failed.text
    assert f'value="{rid}"' in failed.text
    ok = browser.post("/login", data={"r": rid, "username": "13800000001",
                                      "password": "Roam@2026", "csrf_token": csrf})
    final = browser.get(ok.headers["location"])
    assert query(final.headers["location"])["state"] == "keep-me"


def test_login_page_never_shows_an_id_number(browser: httpx.Client, gateway_url: str) -> None:
    client = rp_client("changsha-gov", gateway_url)
    url, _ = authorize_url(client, gateway_url, login_hint="430102199003071234")
    page = browser.get(browser.get(url).headers["location"])
    assert "430102199003071234" not in page.text


# --- /token -------------------------------------------------------------------------------


def token_request(gateway_url: str, data: dict[str, str], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{gateway_url}/token", data=data, **kwargs)


def new_code(browser: httpx.Client, gateway_url: str) -> tuple[str, str]:
    client = rp_client("changsha-gov", gateway_url)
    url, verifier = authorize_url(client, gateway_url, nonce="n")
    return query(log_in(browser, url))["code"], verifier


def test_wrong_client_secret_is_401_with_challenge(browser: httpx.Client,
                                                   gateway_url: str, store: MemoryStore) -> None:
    code, verifier = new_code(browser, gateway_url)
    before = store.snapshot()
    response = token_request(gateway_url, {"grant_type": "authorization_code", "code": code,
                                           "redirect_uri": CHANGSHA_CALLBACK,
                                           "code_verifier": verifier},
                             auth=("changsha-gov", "wrong-secret"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    assert response.headers["cache-control"] == "no-store"
    assert store.snapshot() == before


def test_wrong_auth_method_is_refused(browser: httpx.Client, gateway_url: str,
                                      unchanged: None) -> None:
    # changsha-gov registered client_secret_basic; the secret in the body is refused
    response = token_request(gateway_url, {"grant_type": "authorization_code", "code": "x",
                                           "client_id": "changsha-gov",
                                           "client_secret": SECRETS["changsha-gov"]})
    assert response.status_code in (400, 401)
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize(("data", "error"), [
    ({"grant_type": "password", "username": "a", "password": "b"}, "unsupported_grant_type"),
    ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
    ({"grant_type": "authorization_code"}, "invalid_request"),
    ({"grant_type": "authorization_code", "code": "forged"}, "invalid_grant"),
    ({"grant_type": "refresh_token"}, "invalid_request"),
    ({"grant_type": "refresh_token", "refresh_token": "forged"}, "invalid_grant"),
])
def test_token_errors_follow_rfc6749(gateway_url: str, unchanged: None,
                                     data: dict[str, str], error: str) -> None:
    response = token_request(gateway_url, data, auth=("changsha-gov", SECRETS["changsha-gov"]))
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


def test_token_request_must_be_a_form(gateway_url: str, unchanged: None) -> None:
    response = httpx.post(f"{gateway_url}/token", json={"grant_type": "authorization_code"},
                          auth=("changsha-gov", SECRETS["changsha-gov"]))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("change", ["verifier", "redirect_uri", "client"])
def test_bad_redemption_leaves_the_code_usable(browser: httpx.Client, gateway_url: str,
                                               store: MemoryStore, change: str) -> None:
    code, verifier = new_code(browser, gateway_url)
    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": CHANGSHA_CALLBACK, "code_verifier": verifier}
    auth = ("changsha-gov", SECRETS["changsha-gov"])
    bad = dict(form)
    if change == "verifier":
        bad["code_verifier"] = secrets.token_urlsafe(48)
    elif change == "redirect_uri":
        bad["redirect_uri"] = "http://127.0.0.1:8001/other"
    else:
        auth = ("yueyang-gov", SECRETS["yueyang-gov"])
        bad.update(client_id="yueyang-gov", client_secret=SECRETS["yueyang-gov"])
    before = store.snapshot()
    if change == "client":
        refused = token_request(gateway_url, bad)
    else:
        refused = token_request(gateway_url, bad, auth=auth)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert store.snapshot() == before
    ok = token_request(gateway_url, form, auth=("changsha-gov", SECRETS["changsha-gov"]))
    assert ok.status_code == 200


def test_code_replay_fails_and_revokes_first_tokens(browser: httpx.Client,
                                                    gateway_url: str) -> None:
    code, verifier = new_code(browser, gateway_url)
    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": CHANGSHA_CALLBACK, "code_verifier": verifier}
    auth = ("changsha-gov", SECRETS["changsha-gov"])
    first = token_request(gateway_url, form, auth=auth).json()
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    assert httpx.get(f"{gateway_url}/userinfo", headers=bearer).status_code == 200
    replay = token_request(gateway_url, form, auth=auth)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    revoked = httpx.get(f"{gateway_url}/userinfo", headers=bearer)
    assert revoked.status_code == 401
    assert 'error="invalid_token"' in revoked.headers["www-authenticate"]
    refresh = token_request(gateway_url, {"grant_type": "refresh_token",
                                          "refresh_token": first["refresh_token"]}, auth=auth)
    assert refresh.json()["error"] == "invalid_grant"


def test_refresh_token_reuse_after_rotation_fails_and_ends_grant(
        browser: httpx.Client, gateway_url: str) -> None:
    client, token, _ = full_login(gateway_url, browser)
    old = token["refresh_token"]
    between = client.refresh_token(f"{gateway_url}/token", refresh_token=old)
    rotated = client.refresh_token(f"{gateway_url}/token",
                                   refresh_token=between["refresh_token"])
    # two rotations back: no retry of a lost answer (the reuse window covers only the
    # token just rotated, tests/oidc/test_refresh.py), so a copy someone else holds
    with pytest.raises(OAuthError) as reuse:
        client.refresh_token(f"{gateway_url}/token", refresh_token=old)
    assert reuse.value.error == "invalid_grant"
    # the reuse may be an attacker's: the rotated token is revoked with the grant
    with pytest.raises(OAuthError):
        client.refresh_token(f"{gateway_url}/token", refresh_token=rotated["refresh_token"])
    assert httpx.get(f"{gateway_url}/userinfo", headers={
        "Authorization": f"Bearer {rotated['access_token']}"}).status_code == 401


def test_refresh_token_of_another_client_is_refused(browser: httpx.Client, gateway_url: str,
                                                    store: MemoryStore) -> None:
    _, token, _ = full_login(gateway_url, browser)
    before = store.snapshot()
    response = token_request(gateway_url, {
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"],
        "client_id": "yueyang-gov", "client_secret": SECRETS["yueyang-gov"]})
    assert response.json()["error"] == "invalid_grant"
    assert store.snapshot() == before


def test_refresh_cannot_widen_scope(browser: httpx.Client, gateway_url: str,
                                    store: MemoryStore) -> None:
    _, token, _ = full_login(gateway_url, browser)
    before = store.snapshot()
    response = token_request(gateway_url, {
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"],
        "scope": "openid profile phone region"},
        auth=("changsha-gov", SECRETS["changsha-gov"]))
    assert response.json()["error"] == "invalid_scope"
    assert store.snapshot() == before


# --- /userinfo ----------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], claims: dict[str, Any], key: bytes = b"") -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if header["alg"] == "none":
        return signing_input + "."
    digest = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(digest)}"


def userinfo_status(gateway_url: str, token: str) -> httpx.Response:
    return httpx.get(f"{gateway_url}/userinfo", headers={"Authorization": f"Bearer {token}"})


def test_userinfo_without_token_is_401(gateway_url: str) -> None:
    response = httpx.get(f"{gateway_url}/userinfo")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_tampered_access_token_is_refused(browser: httpx.Client, gateway_url: str) -> None:
    _, token, _ = full_login(gateway_url, browser)
    header, payload, signature = token["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "c-0002"
    tampered = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    response = userinfo_status(gateway_url, tampered)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_alg_none_and_hmac_confusion_tokens_are_refused(browser: httpx.Client,
                                                         gateway_url: str) -> None:
    _, token, _ = full_login(gateway_url, browser)
    header_b64, payload, _ = token["access_token"].split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] = int(time.time()) + 3600
    none_token = forged({"alg": "none", "typ": "at+jwt", "kid": header["kid"]}, claims)
    assert userinfo_status(gateway_url, none_token).status_code == 401
    jwks = httpx.get(f"{gateway_url}/jwks").json()
    public = json.dumps(next(k for k in jwks["keys"] if k["kid"] == header["kid"])).encode()
    hs_token = forged({"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]}, claims, public)
    assert userinfo_status(gateway_url, hs_token).status_code == 401


def test_id_token_is_not_accepted_as_access_token(browser: httpx.Client,
                                                  gateway_url: str) -> None:
    _, token, _ = full_login(gateway_url, browser)
    assert userinfo_status(gateway_url, token["id_token"]).status_code == 401
