"""The demo in a real browser (Chromium via Playwright): single sign-on as a citizen sees it.

Everything runs for real on free loopback ports: the gateway, and the three demo RPs built
on authlib's Starlette client (湘潭 requires L3, so the gateway steps the session up).
Back-channel logout goes over real HTTP from the gateway to the RPs. The sync Playwright
API is used from plain ``def`` tests, so it never runs inside pytest-asyncio's event loop.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Page, Response, expect

from demo import DEMO_SECRETS
from demo.backchannel import BackchannelReceiver
from demo.run import demo_config, demo_rp_apps
from gateway.app import create_app
from gateway.config import load_config
from gateway.login.directory import load_entries
from tests.support.browser import at
from tests.support.gateway import CITIZEN, DEMO_PASSWORD, REPO
from tests.support.servers import free_port, serve

L3_CITIZEN = "13900000002"  # c-0002 李四, verified L3
L1_CITIZEN = "15000000003"  # c-0003 王五, verified L1
L3_ID_NUMBER = "430104198506150039"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"

@dataclass(frozen=True)
class Stack:
    gateway: str
    rp_a: str  # 长沙市政务服务
    rp_b: str  # 岳阳市政务服务
    rp_c: str  # 湘潭市住房公积金（演示）, requires L3
    receivers: dict[str, BackchannelReceiver]  # what each RP's back channel accepted
    id_numbers: tuple[str, ...]
    names: tuple[str, ...]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Gateway and the RPs for the whole module; every test uses its own browser context."""
    shipped = load_config(REPO / "config" / "roam.toml", env={})
    gateway_port = free_port()
    ports = {client_id: free_port() for client_id in DEMO_SECRETS}
    config = demo_config(shipped, gateway_port=gateway_port, rp_ports=ports)
    entries = load_entries(config.path(config.settings.login.directory_file))
    rps = {client_id: app for client_id, (_, app) in demo_rp_apps(config).items()}
    with (serve(create_app(config), gateway_port) as gateway,
          serve(rps["changsha-gov"], ports["changsha-gov"]) as rp_a,
          serve(rps["yueyang-gov"], ports["yueyang-gov"]) as rp_b,
          serve(rps["xiangtan-gov"], ports["xiangtan-gov"]) as rp_c):
        yield Stack(gateway, rp_a, rp_b, rp_c,
                    receivers={cid: app.state.backchannel for cid, app in rps.items()},
                    id_numbers=tuple(e.id_number for e in entries),
                    names=tuple(str(e.claims["name"]) for e in entries))


def _redirect_chain(response: Response | None) -> list[str]:
    """The URLs a navigation went through, first request first, final one last."""
    chain: list[str] = []
    request = response.request if response is not None else None
    while request is not None:
        chain.append(request.url)
        request = request.redirected_from
    return chain[::-1]


def _log_in_at(page: Page, stack: Stack, rp: str, client_name: str, username: str,
               password: str = DEMO_PASSWORD) -> None:
    page.goto(f"{rp}/")
    expect(page.locator("#status")).to_have_text("未登录")
    page.click("#login")
    page.wait_for_url(lambda url: at(url, stack.gateway, "/login"))
    expect(page.locator("h1")).to_have_text("登录")
    expect(page.get_by_text(f"登录后将返回：{client_name}")).to_be_visible()
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")


def test_second_rp_logs_in_without_a_login_page(stack: Stack, page: Page) -> None:
    _log_in_at(page, stack, stack.rp_a, "长沙市政务服务", CITIZEN)
    page.wait_for_url(f"{stack.rp_a}/")
    expect(page.locator("#system")).to_have_text("长沙市政务服务")
    expect(page.locator("#who")).to_have_text("张*")
    expect(page.locator("#acr")).to_have_text("L2")
    expect(page.locator("#amr")).to_have_text("pwd")
    expect(page.locator("#sub")).to_have_text("c-0001")
    expect(page.locator("#region")).to_have_text("430102")
    sid = page.locator("#sid").inner_text()
    auth_time = page.locator("#auth-time").inner_text()
    assert sid
    assert auth_time

    page.goto(f"{stack.rp_b}/")
    expect(page.locator("#system")).to_have_text("岳阳市政务服务")
    expect(page.locator("#status")).to_have_text("未登录")  # its own session, not RP A's

    # From here on, record every response the page gets, redirects included.
    responses: list[Response] = []
    page.on("response", lambda response: responses.append(response))
    with page.expect_navigation(url=f"{stack.rp_b}/") as navigation:
        page.click("#login")
    final = navigation.value
    assert final is not None
    assert final.ok
    expect(page.locator("#status")).to_have_text("已登录")
    expect(page.locator("#who")).to_have_text("张*")
    expect(page.locator("#acr")).to_have_text("L2")

    urls = [r.url for r in responses]
    # The flow really went through the gateway, and back with a code...
    assert any(at(u, stack.gateway, "/authorize") for u in urls), urls
    assert any(at(u, stack.rp_b, "/callback") and "code=" in u for u in urls), urls
    # ...and the gateway never served its login page (nor took a password) in between.
    assert not any(at(u, stack.gateway, "/login") for u in urls), urls
    # The redirect chain of the final navigation, oldest first, says the same.
    chain = _redirect_chain(final)
    assert [urlsplit(u).path for u in chain] == ["/login", "/authorize", "/callback", "/"], chain
    assert at(chain[0], stack.rp_b, "/login")
    assert at(chain[1], stack.gateway, "/authorize")
    # Same gateway session, same authentication: RP B did not cause a new login.
    expect(page.locator("#sid")).to_have_text(sid)
    expect(page.locator("#auth-time")).to_have_text(auth_time)


def test_wrong_password_keeps_the_request_for_the_right_rp(stack: Stack, page: Page) -> None:
    _log_in_at(page, stack, stack.rp_b, "岳阳市政务服务", L3_CITIZEN, password="wrong-password")
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("用户名或密码错误")
    assert at(page.url, stack.gateway, "/login")
    expect(page.get_by_text("登录后将返回：岳阳市政务服务")).to_be_visible()

    page.fill("#username", L3_CITIZEN)
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation(url=f"{stack.rp_b}/") as navigation:
        page.click("#login-submit")
    chain = _redirect_chain(navigation.value)
    assert any(at(u, stack.rp_b, "/callback") for u in chain), chain
    assert not any(urlsplit(u).netloc == urlsplit(stack.rp_a).netloc for u in chain), chain
    expect(page.locator("#system")).to_have_text("岳阳市政务服务")
    expect(page.locator("#who")).to_have_text("李*")
    expect(page.locator("#acr")).to_have_text("L2")  # a password alone, on an L3 account
    # RP A was not logged in along the way (it has seen nothing of this flow).
    page.goto(f"{stack.rp_a}/")
    expect(page.locator("#status")).to_have_text("未登录")


def _assert_no_personal_data(html: str, stack: Stack) -> None:
    for id_number in stack.id_numbers:
        assert id_number not in html
        assert id_number.lower() not in html
    for name in stack.names:
        assert name not in html


def test_pages_never_show_an_unmasked_id_number(stack: Stack, page: Page) -> None:
    # The ID number as login_hint is not pre-filled (only a phone number would be).
    page.goto(f"{stack.rp_a}/login?login_hint={L3_ID_NUMBER}")
    page.wait_for_url(lambda url: at(url, stack.gateway, "/login"))
    _assert_no_personal_data(page.content(), stack)
    expect(page.locator("#username")).to_have_value("")

    # A failed attempt with the ID number as user name does not echo it back.
    page.fill("#username", L3_ID_NUMBER)
    page.fill("#password", "wrong-password")
    page.click("#login-submit")
    expect(page.get_by_role("alert")).to_be_visible()
    _assert_no_personal_data(page.content(), stack)
    expect(page.locator("#username")).to_have_value("")

    # Logging in by ID number works, and the RP page shows only masked data too.
    page.fill("#username", L3_ID_NUMBER)
    page.fill("#password", DEMO_PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{stack.rp_a}/")
    expect(page.locator("#who")).to_have_text("李*")
    _assert_no_personal_data(page.content(), stack)


def test_rp_logout_ends_only_that_rps_session(stack: Stack, page: Page) -> None:
    _log_in_at(page, stack, stack.rp_a, "长沙市政务服务", CITIZEN)
    page.wait_for_url(f"{stack.rp_a}/")
    page.click("#logout-local")
    page.wait_for_url(f"{stack.rp_a}/")
    expect(page.locator("#status")).to_have_text("未登录")
    # The gateway session is still there: logging in again is silent.
    gateway_pages: list[str] = []
    page.on("response", lambda r: gateway_pages.append(r.url)
            if at(r.url, stack.gateway, "/login") else None)
    page.click("#login")
    page.wait_for_url(f"{stack.rp_a}/")
    expect(page.locator("#who")).to_have_text("张*")
    assert gateway_pages == []


# --- the whole story: SSO, step-up, logout that reaches every system -----------------


def _unverified_sid(token: str) -> object:
    """Only to pick this test's token out of what the RP received; verified afterwards."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("sid")


def _logout_token_for(receiver: BackchannelReceiver, sid: str,
                      timeout: float = 10.0) -> str:
    """The raw logout token the RP accepted for ``sid``; waits for the back channel."""
    deadline = time.monotonic() + timeout
    while True:
        for token in list(receiver.tokens):
            if _unverified_sid(token) == sid:
                return token
        assert time.monotonic() < deadline, f"no logout token for sid {sid} arrived"
        time.sleep(0.05)


def _verify_logout_token(stack: Stack, token: str, client_id: str, sid: str) -> dict[str, Any]:
    """Check the token as the spec says, with joserfc and the gateway's published JWKS."""
    published = KeySet.import_key_set(httpx.get(f"{stack.gateway}/jwks", timeout=10).json())
    decoded = jwt.decode(token, published, algorithms=["RS256", "ES256"])
    assert decoded.header["typ"] == "logout+jwt"
    assert decoded.header["alg"] in ("RS256", "ES256")
    claims = decoded.claims
    jwt.JWTClaimsRegistry(
        leeway=30,
        iss={"essential": True, "value": stack.gateway},
        aud={"essential": True, "value": client_id},
        iat={"essential": True}, jti={"essential": True},
    ).validate(claims)
    assert time.time() - claims["iat"] < 300
    assert claims["events"] == {BACKCHANNEL_EVENT: {}}
    assert claims["sid"] == sid
    assert claims["sub"] == "c-0001"
    assert "nonce" not in claims
    return dict(claims)


def test_sso_step_up_and_logout_that_reaches_every_system(stack: Stack, page: Page) -> None:
    # 1. A password login at RP A (长沙): L2, what a password alone reaches.
    _log_in_at(page, stack, stack.rp_a, "长沙市政务服务", CITIZEN)
    page.wait_for_url(f"{stack.rp_a}/")
    expect(page.locator("#acr")).to_have_text("L2")
    sid = page.locator("#sid").inner_text()
    auth_time = page.locator("#auth-time").inner_text()
    assert sid

    # 2. RP B (岳阳): silent, no login page.
    gateway_pages: list[str] = []
    page.on("response", lambda r: gateway_pages.append(urlsplit(r.url).path)
            if urlsplit(r.url).netloc == urlsplit(stack.gateway).netloc else None)
    page.goto(f"{stack.rp_b}/")
    page.click("#login")
    page.wait_for_url(f"{stack.rp_b}/")
    expect(page.locator("#status")).to_have_text("已登录")
    expect(page.locator("#sid")).to_have_text(sid)
    assert "/authorize" in gateway_pages
    assert "/login" not in gateway_pages, gateway_pages

    # 3. RP C (湘潭, requires L3): the gateway asks only for the face check.
    page.goto(f"{stack.rp_c}/")
    expect(page.locator("#system")).to_have_text("湘潭市住房公积金（演示）")
    expect(page.locator("#requirement")).to_contain_text("L3")
    page.click("#login")
    page.wait_for_url(lambda url: at(url, stack.gateway, "/stepup"))
    expect(page.locator("h1")).to_have_text("人脸核验")
    expect(page.locator("#stepup-reason")).to_contain_text("湘潭市住房公积金（演示）")
    expect(page.locator("#stepup-reason")).to_contain_text("L3")
    expect(page.locator("#demo-box")).to_contain_text("演示环境")
    expect(page.locator("#username")).to_have_count(0)  # not the login page: no password
    expect(page.locator("#password")).to_have_count(0)
    page.click("#face-start")
    page.wait_for_url(f"{stack.rp_c}/")
    expect(page.locator("#status")).to_have_text("已登录")
    expect(page.locator("#who")).to_have_text("张*")
    expect(page.locator("#acr")).to_have_text("L3")
    amr = page.locator("#amr").inner_text().split()
    assert "face" in amr, amr
    assert "pwd" in amr, amr
    expect(page.locator("#sid")).to_have_text(sid)  # the same gateway session, stepped up
    assert page.locator("#auth-time").inner_text() >= auth_time
    assert "/login" not in gateway_pages, gateway_pages

    # 4. 我的登录 at the gateway lists the three systems of this session.
    page.click("#my-logins")
    page.wait_for_url(lambda url: at(url, stack.gateway, "/my/logins"))
    expect(page.locator("#acr")).to_have_text("L3")
    systems = page.locator("#systems li")
    expect(systems).to_have_count(3)
    clients = {systems.nth(i).get_attribute("data-client") for i in range(3)}
    assert clients == {"changsha-gov", "yueyang-gov", "xiangtan-gov"}
    expect(page.locator("#systems")).to_contain_text("湘潭市住房公积金（演示）")

    # 5. "退出登录" at RP B: RP-initiated logout through the gateway, back to RP B's home.
    page.goto(f"{stack.rp_b}/")
    expect(page.locator("#status")).to_have_text("已登录")
    page.click("#logout")
    page.wait_for_url(lambda url: at(url, stack.rp_b, "/"))
    assert "state=" in page.url  # the gateway returned the RP's state
    expect(page.locator("#status")).to_have_text("未登录")
    expect(page.locator("#logout-done")).to_be_visible()

    # 6. RP A's back channel got a logout token that validates against the JWKS...
    token = _logout_token_for(stack.receivers["changsha-gov"], sid)
    _verify_logout_token(stack, token, "changsha-gov", sid)
    # ...and so did 湘潭's (ES256 for 岳阳 is checked the same way in test_rp).
    _verify_logout_token(stack, _logout_token_for(stack.receivers["xiangtan-gov"], sid),
                         "xiangtan-gov", sid)

    # 7. RP A's next page load: logged out, and it says why.
    page.goto(f"{stack.rp_a}/")
    expect(page.locator("#status")).to_have_text("未登录")
    notice = page.locator("#logged-out-notice")
    expect(notice).to_be_visible()
    assert re.fullmatch(r"您已于 \d\d:\d\d:\d\d 在其他系统退出登录（统一身份认证单点退出）",
                        notice.inner_text()), notice.inner_text()
    page.goto(f"{stack.rp_c}/")
    expect(page.locator("#logged-out-notice")).to_be_visible()

    # 8. The gateway session is gone too: logging in at RP A asks for a password again.
    page.goto(f"{stack.rp_a}/")
    page.click("#login")
    page.wait_for_url(lambda url: at(url, stack.gateway, "/login"))
    expect(page.locator("#username")).to_be_visible()


def test_an_account_verified_to_l1_cannot_reach_the_l3_rp(stack: Stack, page: Page) -> None:
    """No factor stands in for proofing: the RP hears the level is out of reach."""
    _log_in_at(page, stack, stack.rp_c, "湘潭市住房公积金（演示）", L1_CITIZEN)
    page.wait_for_url(lambda url: at(url, stack.rp_c, "/callback"))
    expect(page.locator("#error-code")).to_have_text("unmet_authentication_requirements")
    expect(page.locator("#error-detail")).to_have_text(
        "The account is verified only to L1; the request needs L3.")
    expect(page.locator("#otp")).to_have_count(0)
