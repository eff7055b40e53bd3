"""我的登录 in a real browser: what this login did, and how far the account was verified."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import Page, expect

from gateway.app import create_app
from gateway.binding.bindings import Bindings
from gateway.binding.identity import ChannelIdentity
from gateway.store import MemoryStore
from gateway.store.redis import RedisStore
from tests.support.audit import kept
from tests.support.browser import at
from tests.support.gateway import DEMO_PASSWORD, audit_file, config_on_port
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


def _on_redis(coroutine: Callable[[RedisStore], Awaitable[object]], url: str,
              prefix: str) -> object:
    """Run store work on a loop of its own (Playwright's sync API holds this thread's)."""
    async def run() -> object:
        store = RedisStore.from_url(url, prefix=prefix)
        try:
            return await coroutine(store)
        finally:
            await store.close()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


def test_my_logins_lists_and_removes_the_persons_bindings(
        redis_url: str, redis_prefix: str, page: Page) -> None:
    wechat = ChannelIdentity("wechat", "wx-demo-app", "oWx1234567890abc", "u-1")
    alipay = ChannelIdentity("alipay", "2021000000000001", "2088000000000001")

    async def bind(store: RedisStore) -> object:
        bindings = Bindings(store, ttl=3600, citizen_of=lambda _: None)
        await bindings.bind(wechat, "c-0001", "L3")
        await bindings.bind(alipay, "c-0001", "L2")
        await bindings.bind(ChannelIdentity("alipay", "2021", "2088-someone-else"), "c-0002",
                            "L2")
        return None

    async def resolve(store: RedisStore) -> object:
        bindings = Bindings(store, ttl=3600, citizen_of=lambda _: None)
        return [await bindings.resolve(wechat), await bindings.resolve(alipay)]

    _on_redis(bind, redis_url, redis_prefix)
    port = free_port()
    config = config_on_port(port, backend="redis", redis_url=redis_url, prefix=redis_prefix)
    with serve(create_app(config), port) as gateway_url:
        page.goto(f"{gateway_url}/login?next=/my/logins")
        page.fill("#username", "13800000001")  # c-0001
        page.fill("#password", DEMO_PASSWORD)
        page.click("#login-submit")
        page.wait_for_url(lambda url: at(url, gateway_url, "/my/logins"))
        items = page.locator("#bindings li")
        expect(items).to_have_count(2)  # only this person's
        expect(page.locator("#bindings")).to_contain_text("微信小程序")
        expect(page.locator("#bindings")).to_contain_text("oWx****abc")
        expect(page.locator("#bindings")).not_to_contain_text("oWx1234567890abc")
        page.locator(f'li[data-binding="{wechat.key}"] button.unbind').click()
        page.wait_for_url(lambda url: at(url, gateway_url, "/my/logins"))
        expect(page.locator("#bindings li")).to_have_count(1)
        expect(page.locator("#bindings")).to_contain_text("支付宝小程序")
    assert _on_redis(resolve, redis_url, redis_prefix) == [(wechat.subject, "L1"),
                                                           ("c-0001", "L2")]
    assert kept(audit_file(port), "binding.remove", "success")


def test_removing_a_binding_needs_the_csrf_token(redis_url: str, redis_prefix: str) -> None:
    port = free_port()
    config = config_on_port(port, backend="redis", redis_url=redis_url, prefix=redis_prefix)
    with serve(create_app(config), port) as gateway_url:
        answer = httpx.post(f"{gateway_url}/my/logins/bindings/remove",
                            data={"binding": "x"})
        assert answer.status_code == 400
        assert "页面已过期" in answer.text
