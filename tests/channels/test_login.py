"""Mini-program login end to end: mock platform ↔ gateway /token ↔ a client over HTTP."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.channels.conftest import (
    APPID,
    CHANNEL_GRANT,
    MINIAPP,
    PHONE,
    SECRET,
    Platforms,
    channel_form,
    channel_gateway,
)
from tests.support.gateway import SECRETS

RELOGIN = "请重新登录"


def claims_of(gateway_url: str, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(httpx.get(f"{gateway_url}/jwks").json())
    decoded = jwt.decode(token, keys)
    return dict(decoded.claims)


def wechat_login(gateway_url: str, platforms: Platforms, openid: str = "o-alice",
                 **extra: Any) -> httpx.Response:
    code = platforms.wechat.login_code(openid)
    return httpx.post(f"{gateway_url}/token", data=channel_form("wechat", code, **extra))


def test_discovery_advertises_the_channel_grant(gateway_url: str) -> None:
    metadata = httpx.get(f"{gateway_url}/.well-known/openid-configuration").json()
    assert CHANNEL_GRANT in metadata["grant_types_supported"]


def test_wechat_login_issues_gateway_tokens(gateway_url: str, platforms: Platforms) -> None:
    response = wechat_login(gateway_url, platforms)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    token = response.json()
    id_claims = claims_of(gateway_url, token["id_token"])
    assert id_claims["acr"] == "L1"
    assert id_claims["amr"] == ["wechat"]
    assert id_claims["aud"] == MINIAPP
    assert id_claims["sub"].startswith("ch-")
    assert "o-alice" not in id_claims["sub"]
    assert "u-alice" not in id_claims["sub"]
    # the same WeChat user logs in again: the same subject
    again = wechat_login(gateway_url, platforms).json()
    assert claims_of(gateway_url, again["id_token"])["sub"] == id_claims["sub"]
    # the refresh token works like any other (offline_access was asked for and allowed)
    refreshed = httpx.post(f"{gateway_url}/token", data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"],
        "client_id": MINIAPP})
    assert refreshed.status_code == 200, refreshed.text
    info = httpx.get(f"{gateway_url}/userinfo",
                     headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"})
    assert info.status_code == 200
    assert info.json()["sub"] == id_claims["sub"]
    assert "phone_number" not in info.json()  # no phone code: no phone claim


def test_no_refresh_token_without_offline_access(gateway_url: str,
                                                 platforms: Platforms) -> None:
    token = wechat_login(gateway_url, platforms, scope="openid").json()
    assert "access_token" in token
    assert "id_token" in token
    assert "refresh_token" not in token


def test_alipay_login_verifies_signatures_both_ways(gateway_url: str,
                                                    platforms: Platforms) -> None:
    code = platforms.alipay.auth_code("2088102150477652")
    response = httpx.post(f"{gateway_url}/token", data=channel_form("alipay", code))
    assert response.status_code == 200, response.text
    id_claims = claims_of(gateway_url, response.json()["id_token"])
    assert id_claims["acr"] == "L1"
    assert id_claims["amr"] == ["alipay"]
    assert id_claims["sub"].startswith("ch-")


def test_alipay_answer_with_a_bad_signature_is_refused_and_logged(
        gateway_url: str, platforms: Platforms, caplog: pytest.LogCaptureFixture) -> None:
    code = platforms.alipay.auth_code("2088102150477653")
    platforms.alipay.tamper = True
    try:
        with caplog.at_level(logging.INFO):
            response = httpx.post(f"{gateway_url}/token", data=channel_form("alipay", code))
    finally:
        platforms.alipay.tamper = False
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert RELOGIN in response.json()["error_description"]
    refused = [r for r in caplog.records if "bad signature" in r.getMessage()]
    assert refused
    assert refused[0].levelno == logging.WARNING


def test_alipay_busy_is_503_with_retry_after(gateway_url: str, platforms: Platforms) -> None:
    code = platforms.alipay.auth_code("2088102150477654")
    platforms.alipay.busy = True
    try:
        response = httpx.post(f"{gateway_url}/token", data=channel_form("alipay", code))
    finally:
        platforms.alipay.busy = False
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response.headers["retry-after"]) > 0


def test_alipay_invalid_code(gateway_url: str) -> None:
    response = httpx.post(f"{gateway_url}/token", data=channel_form("alipay", "no-such-code"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert RELOGIN in response.json()["error_description"]


@pytest.mark.parametrize(("openid", "errcode", "status", "error", "words"), [
    ("o-bob", 45011, 503, "temporarily_unavailable", "繁忙"),
    ("o-bob", -1, 503, "temporarily_unavailable", "繁忙"),
    ("o-risky", 0, 400, "invalid_grant", "风险"),
])
def test_wechat_platform_errors(gateway_url: str, platforms: Platforms, openid: str,
                                errcode: int, status: int, error: str, words: str) -> None:
    code = platforms.wechat.login_code(openid, errcode=errcode)
    response = httpx.post(f"{gateway_url}/token", data=channel_form("wechat", code))
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert words in response.json()["error_description"]
    if status == 503:
        assert int(response.headers["retry-after"]) > 0
    else:
        assert "retry-after" not in response.headers


def test_wechat_invalid_code_is_40029_relogin(gateway_url: str) -> None:
    response = httpx.post(f"{gateway_url}/token", data=channel_form("wechat", "made-up"))
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant",
                               "error_description": "登录凭证无效或已使用，请重新登录。"}


def test_wechat_code_used_elsewhere_is_40163_relogin(gateway_url: str,
                                                     platforms: Platforms) -> None:
    code = platforms.wechat.login_code("o-bob")
    # someone else (another server of the same app) redeemed it at the platform first
    first = httpx.get(f"{platforms.wechat_url}/sns/jscode2session", params={
        "appid": APPID, "secret": SECRET, "js_code": code, "grant_type": "authorization_code"})
    assert "openid" in first.json()
    response = httpx.post(f"{gateway_url}/token", data=channel_form("wechat", code))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert RELOGIN in response.json()["error_description"]


def test_a_replayed_code_logs_in_once_and_never_reaches_the_platform_again(
        gateway_url: str, platforms: Platforms) -> None:
    code = platforms.wechat.login_code("o-bob")
    form = channel_form("wechat", code)
    assert httpx.post(f"{gateway_url}/token", data=form).status_code == 200
    sent = len(platforms.wechat.session_keys_sent)
    replay = httpx.post(f"{gateway_url}/token", data=form)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert len(platforms.wechat.session_keys_sent) == sent


def test_a_code_sent_twice_at_once_logs_in_once(gateway_url: str,
                                                platforms: Platforms) -> None:
    for _ in range(3):
        form = channel_form("wechat", platforms.wechat.login_code("o-bob"))
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(
                lambda f: httpx.post(f"{gateway_url}/token", data=f), [form] * 8))
        assert sorted(a.status_code for a in answers) == [200] + [400] * 7


def test_unknown_channel_and_missing_code(gateway_url: str) -> None:
    response = httpx.post(f"{gateway_url}/token", data=channel_form("douyin", "x"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    response = httpx.post(f"{gateway_url}/token", data=channel_form("wechat", ""))
    assert response.json()["error"] == "invalid_request"


def test_a_client_not_allowed_the_grant_is_refused_before_the_platform(
        gateway_url: str, platforms: Platforms) -> None:
    code = platforms.wechat.login_code("o-bob")
    sent = len(platforms.wechat.session_keys_sent)
    form = channel_form("wechat", code)
    form.update(client_id="yueyang-gov", client_secret=SECRETS["yueyang-gov"])  # post auth
    response = httpx.post(f"{gateway_url}/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    unknown = httpx.post(f"{gateway_url}/token", data={**channel_form("wechat", code),
                                                         "client_id": "nobody"})
    assert unknown.json()["error"] == "invalid_client"
    assert len(platforms.wechat.session_keys_sent) == sent
    # the code was never spent: its citizen can still log in with it
    assert httpx.post(f"{gateway_url}/token",
                      data=channel_form("wechat", code)).status_code == 200


def test_a_confidential_client_authenticates_before_the_platform_is_asked(
        platforms: Platforms) -> None:
    allowed = {"changsha-gov": {"grant_types": ("authorization_code", CHANNEL_GRANT)}}
    with channel_gateway(platforms, allowed) as url:
        code = platforms.wechat.login_code("o-bob")
        form = {**channel_form("wechat", code), "scope": "openid"}
        del form["client_id"]
        sent = len(platforms.wechat.session_keys_sent)
        wrong = httpx.post(f"{url}/token", data=form, auth=("changsha-gov", "wrong-secret"))
        assert wrong.status_code == 401
        assert wrong.json()["error"] == "invalid_client"
        assert len(platforms.wechat.session_keys_sent) == sent
        right = httpx.post(f"{url}/token", data=form,
                           auth=("changsha-gov", SECRETS["changsha-gov"]))
        assert right.status_code == 200, right.text
        assert claims_of(url, right.json()["id_token"])["aud"] == "changsha-gov"


def test_phone_code_gives_a_verified_phone_number(gateway_url: str,
                                                  platforms: Platforms) -> None:
    phone_code = platforms.wechat.phone_code("o-alice")
    response = wechat_login(gateway_url, platforms, phone_code=phone_code)
    assert response.status_code == 200, response.text
    token = response.json()
    assert claims_of(gateway_url, token["id_token"])["acr"] == "L1"
    info = httpx.get(f"{gateway_url}/userinfo",
                     headers={"Authorization": f"Bearer {token['access_token']}"}).json()
    assert info["phone_number"] == PHONE
    assert info["phone_number_verified"] is True
    # a phone code works once, too
    again = wechat_login(gateway_url, platforms, phone_code=phone_code)
    assert again.json()["error"] == "invalid_grant"


def test_two_gateways_share_the_access_token_and_a_code_logs_in_once(
        platforms: Platforms, redis_url: str, redis_prefix: str) -> None:
    calls = platforms.wechat.stable_token_calls
    with channel_gateway(platforms, backend="redis", redis_url=redis_url,
                         prefix=redis_prefix) as one, \
            channel_gateway(platforms, backend="redis", redis_url=redis_url,
                            prefix=redis_prefix) as two:
        for url in (one, two, one, two):
            response = wechat_login(url, platforms,
                                    phone_code=platforms.wechat.phone_code("o-alice"))
            assert response.status_code == 200, response.text
        # one code sent to both processes at once logs in once
        form = channel_form("wechat", platforms.wechat.login_code("o-bob"))
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda u: httpx.post(f"{u}/token", data=form),
                                    [one, two] * 4))
        assert sorted(a.status_code for a in answers) == [200] + [400] * 7
    assert platforms.wechat.stable_token_calls == calls + 1


def test_no_session_key_secret_or_phone_in_the_logs(
        platforms: Platforms, caplog: pytest.LogCaptureFixture) -> None:
    sent_before = len(platforms.wechat.session_keys_sent)
    with caplog.at_level(logging.DEBUG), channel_gateway(platforms) as url:
        ok = wechat_login(url, platforms, phone_code=platforms.wechat.phone_code("o-alice"))
        assert ok.status_code == 200
        refused = wechat_login(url, platforms, "o-risky")
        assert refused.status_code == 400
        token = ok.json()
    session_keys = platforms.wechat.session_keys_sent[sent_before:]
    assert session_keys
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert text  # the scan read something
    for secret in (*session_keys, SECRET, PHONE, "session_key"):
        assert secret not in text
    for secret in session_keys:  # nor in what the client got
        assert secret not in str(token)


def test_a_scope_the_gateway_refuses_spends_no_code(gateway_url: str,
                                                    platforms: Platforms) -> None:
    code = platforms.wechat.login_code("o-bob")
    sent = len(platforms.wechat.session_keys_sent)
    refused = httpx.post(f"{gateway_url}/token",
                         data=channel_form("wechat", code, scope="openid no-such-scope"))
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"
    assert len(platforms.wechat.session_keys_sent) == sent, "the platform was not asked"
    fixed = httpx.post(f"{gateway_url}/token", data=channel_form("wechat", code))
    assert fixed.status_code == 200, "the code is still good for the corrected request"
