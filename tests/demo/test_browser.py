"""The demo in a real browser (Chromium via Playwright): single sign-on as a citizen sees it.

Everything runs for real on free loopback ports: the gateway, and the two demo RPs built on
authlib's Starlette client. The sync Playwright API is used from plain ``def`` tests, so it
never runs inside pytest-asyncio's event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Response, expect, sync_playwright

from gateway.app import create_app
from gateway.config import load_config
from gateway.demo.run import demo_config, demo_rp_apps
from gateway.login.directory import load_entries
from tests.support.gateway import CITIZEN, DEMO_PASSWORD, REPO
from tests.support.servers import free_port, serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
L3_CITIZEN = "13900000002"  # c-0002 李四, level L3
L3_ID_NUMBER = "430104198506150039"



@dataclass(frozen=True)
class Stack:
    gateway: str
    rp_a: str  # 长沙市政务服务
    rp_b: str  # 岳阳市政务服务
    id_numbers: tuple[str, ...]
    names: tuple[str, ...]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Gateway and both RPs for the whole module; every test uses its own browser context."""
    shipped = load_config(REPO / "config" / "roam.toml", env={})
    gateway_port = free_port()
    ports = {"changsha-gov": free_port(), "yueyang-gov": free_port()}
    config = demo_config(shipped, gateway_port=gateway_port, rp_ports=ports)
    entries = load_entries(config.path(config.settings.login.directory_file))
    rps = demo_rp_apps(config)
    with (serve(create_app(config), gateway_port) as gateway,
          serve(rps["changsha-gov"][1], ports["changsha-gov"]) as rp_a,
          serve(rps["yueyang-gov"][1], ports["yueyang-gov"]) as rp_b):
        yield Stack(gateway, rp_a, rp_b,
                    id_numbers=tuple(e.id_number for e in entries),
                    names=tuple(str(e.claims["name"]) for e in entries))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():  # fail, not skip: a skipped browser test proves nothing
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context: no cookies at the gateway or at either RP."""
    context = browser.new_context(locale="zh-CN")
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def _is(url: str, base: str, path: str) -> bool:
    """Whether ``url`` is ``path`` at the origin ``base`` (query ignored)."""
    parts, origin = urlsplit(url), urlsplit(base)
    return parts.netloc == origin.netloc and parts.path == path


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
    page.wait_for_url(lambda url: _is(url, stack.gateway, "/login"))
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
    assert any(_is(u, stack.gateway, "/authorize") for u in urls), urls
    assert any(_is(u, stack.rp_b, "/callback") and "code=" in u for u in urls), urls
    # ...and the gateway never served its login page (nor took a password) in between.
    assert not any(_is(u, stack.gateway, "/login") for u in urls), urls
    # The redirect chain of the final navigation, oldest first, says the same.
    chain = _redirect_chain(final)
    assert [urlsplit(u).path for u in chain] == ["/login", "/authorize", "/callback", "/"], chain
    assert _is(chain[0], stack.rp_b, "/login")
    assert _is(chain[1], stack.gateway, "/authorize")
    # Same gateway session, same authentication: RP B did not cause a new login.
    expect(page.locator("#sid")).to_have_text(sid)
    expect(page.locator("#auth-time")).to_have_text(auth_time)


def test_wrong_password_keeps_the_request_for_the_right_rp(stack: Stack, page: Page) -> None:
    _log_in_at(page, stack, stack.rp_b, "岳阳市政务服务", L3_CITIZEN, password="wrong-password")
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("用户名或密码错误")
    assert _is(page.url, stack.gateway, "/login")
    expect(page.get_by_text("登录后将返回：岳阳市政务服务")).to_be_visible()

    page.fill("#username", L3_CITIZEN)
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation(url=f"{stack.rp_b}/") as navigation:
        page.click("#login-submit")
    chain = _redirect_chain(navigation.value)
    assert any(_is(u, stack.rp_b, "/callback") for u in chain), chain
    assert not any(urlsplit(u).netloc == urlsplit(stack.rp_a).netloc for u in chain), chain
    expect(page.locator("#system")).to_have_text("岳阳市政务服务")
    expect(page.locator("#who")).to_have_text("李*")
    expect(page.locator("#acr")).to_have_text("L3")
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
    page.wait_for_url(lambda url: _is(url, stack.gateway, "/login"))
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
    page.click("#logout")
    page.wait_for_url(f"{stack.rp_a}/")
    expect(page.locator("#status")).to_have_text("未登录")
    # The gateway session is still there: logging in again is silent.
    gateway_pages: list[str] = []
    page.on("response", lambda r: gateway_pages.append(r.url)
            if _is(r.url, stack.gateway, "/login") else None)
    page.click("#login")
    page.wait_for_url(f"{stack.rp_a}/")
    expect(page.locator("#who")).to_have_text("张*")
    assert gateway_pages == []
