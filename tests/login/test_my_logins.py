"""我的登录 in a real browser: what this login did, and how far the account was verified."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from gateway.app import create_app
from gateway.store import MemoryStore
from tests.support.browser import at
from tests.support.gateway import DEMO_PASSWORD, config_on_port
from tests.support.servers import free_port, serve


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    port = free_port()
    with serve(create_app(config_on_port(port), store=MemoryStore()), port) as url:
        yield url


def test_my_logins_shows_this_logins_level_and_the_accounts(gateway_url: str,
                                                            page: Page) -> None:
    page.goto(f"{gateway_url}/login?next=/my/logins")
    page.fill("#username", "13800000001")  # c-0001, verified L3
    page.fill("#password", DEMO_PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(lambda url: at(url, gateway_url, "/my/logins"))
    expect(page.locator("#acr")).to_have_text("L2")  # a password alone
    expect(page.locator("#amr")).to_have_text("pwd")
    expect(page.locator("#verified-level")).to_have_text("L3")
    expect(page.locator("#levels")).to_contain_text("账户核验等级")

    # The face check raises this login to the account's level, no further.
    page.goto(f"{gateway_url}/stepup?next=/my/logins&acr=L3")
    page.click("#face-start")
    page.wait_for_url(lambda url: at(url, gateway_url, "/my/logins"))
    expect(page.locator("#acr")).to_have_text("L3")
    expect(page.locator("#amr")).to_have_text("pwd face")
    expect(page.locator("#verified-level")).to_have_text("L3")


def test_an_account_verified_to_l2_shows_it(gateway_url: str, page: Page) -> None:
    page.goto(f"{gateway_url}/login?next=/my/logins")
    page.fill("#username", "13800000004")  # c-0004, verified L2
    page.fill("#password", DEMO_PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(lambda url: at(url, gateway_url, "/my/logins"))
    expect(page.locator("#acr")).to_have_text("L2")
    expect(page.locator("#verified-level")).to_have_text("L2")
    # asking for more than the account was verified to says so, in Chinese
    page.goto(f"{gateway_url}/stepup?next=/my/logins&acr=L3")
    expect(page.locator("main")).to_contain_text("您的账户目前核验到 L2 实名认证")
