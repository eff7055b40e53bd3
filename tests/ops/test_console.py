"""The operators' console in Chromium against a real ``roam serve`` on Redis with real
upstream instances: two factors to get in, each TOTP code once, the status page showing a
killed instance going down, an operator draining and restoring an instance (seen in the
store every process routes by), a viewer who can only look, and the API's own refusals."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from gateway.health import InstanceState, SharedHealth
from gateway.store import RedisStore
from tests.support.browser import at, fresh_page
from tests.support.cluster import Cluster
from tests.support.health import eventually

PASSWORD = "Ops@2026"  # config/operators.toml's demo operators (fictional)
SECRETS = {"ops-demo": "UGGTFWJD6QVTSZRN5TGEJWPF76RDUBSQ",
           "ops-viewer": "V7ZXPEZJ5DUHJ3POCOTPVLR5S4JJS5RR"}
SYSTEM = "yuelu-docs"




@pytest.fixture
def gateway(cluster: Cluster) -> str:
    url, _ = cluster.gateway("console")
    return url


def stored(cluster: Cluster, instance: str) -> InstanceState:
    """The instance's state in the store every gateway process routes by."""
    async def read() -> InstanceState:
        store = RedisStore.from_url(cluster.redis_url, prefix=cluster.prefix)
        try:
            return (await SharedHealth(store, cluster.systems).read(SYSTEM, instance))[0]
        finally:
            await store.close()
    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's loop
        return thread.submit(asyncio.run, read()).result()


def log_in(page: Page, gateway: str, name: str, code: str | None = None) -> str:
    """Fill the console's login; the code used (the current one by default)."""
    page.goto(f"{gateway}/ops")
    assert at(page.url, gateway, "/ops/login")
    code = code or pyotp.TOTP(SECRETS[name]).now()
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.fill("#code", code)
    page.click("#ops-login")
    return code


def row(page: Page, instance: str) -> str:
    return page.locator(f'tr.instance[data-system="{SYSTEM}"][data-instance="{instance}"]') \
        .inner_text()


def shows(page: Page, instance: str, words: str) -> bool:
    page.reload()
    return words in row(page, instance)


def test_the_console_needs_both_factors_and_each_code_once(gateway: str, page: Page) -> None:
    page.goto(f"{gateway}/ops")
    assert at(page.url, gateway, "/ops/login")
    log_in(page, gateway, "ops-demo", code="000000")  # the password alone is not enough
    expect(page.locator("#ops-error")).to_have_text("账号、密码或动态验证码错误")
    used = log_in(page, gateway, "ops-demo")
    page.wait_for_url(f"{gateway}/ops")
    expect(page.locator("header")).to_contain_text("ops-demo")
    page.click("#ops-logout")
    assert at(page.url, gateway, "/ops/login")
    log_in(page, gateway, "ops-demo", code=used)  # seen once: never again
    expect(page.locator("#ops-error")).to_contain_text("已使用")
    # a citizen's session is nothing here: the console has accounts of its own
    assert httpx.get(f"{gateway}/ops/api/status").status_code == 401


def test_a_killed_instance_shows_and_an_operator_drains_and_restores_one(
        gateway: str, cluster: Cluster, page: Page, tmp_path: Path) -> None:
    log_in(page, gateway, "ops-demo")
    page.wait_for_url(f"{gateway}/ops")
    a, b = cluster.urls["a"], cluster.urls["b"]
    expect(page.locator(f"#system-{SYSTEM}")).to_contain_text("岳麓区不动产登记（测试）")
    expect(page.locator("#group-430100")).to_contain_text("长沙市")  # by city and county
    assert "正常" in row(page, a)
    assert eventually(lambda: shows(page, a, "成功"), "a probe of a shown")

    cluster.down("a")
    assert eventually(lambda: shows(page, a, "故障"), "a down on the page")
    expect(page.locator("#transitions")).to_contain_text("正常 → 故障")

    page.locator(f'tr.instance[data-instance="{b}"] input[name="reason"]').fill("升级维护")
    page.locator(f'tr.instance[data-instance="{b}"] button').click()
    expect(page.locator("p.notice")).to_be_visible()
    assert "已摘除" in row(page, b)
    expect(page.locator("#transitions")).to_contain_text("升级维护（ops:ops-demo）")
    page.screenshot(path=str(tmp_path / "ops.png"), full_page=True)
    assert stored(cluster, b).drained_by == "ops:ops-demo"

    page.locator(f'tr.instance[data-instance="{b}"] button').click()  # 恢复
    assert "正常" in row(page, b)
    assert not stored(cluster, b).drained


def test_a_viewer_sees_and_cannot_change(gateway: str, cluster: Cluster,
                                         browser: Browser) -> None:
    with fresh_page(browser) as page:
        log_in(page, gateway, "ops-viewer")
        page.wait_for_url(f"{gateway}/ops")
        expect(page.locator("header")).to_contain_text("（只读）")
        expect(page.locator("form[action='/ops/rotation']")).to_have_count(0)
        cookies = {c["name"]: c["value"] for c in page.context.cookies(gateway)}
        answer = httpx.post(f"{gateway}/ops/api/rotation", cookies=cookies,
                            headers={"X-CSRF-Token": cookies["roam_csrf"]},
                            json={"system": SYSTEM, "instance": cluster.urls["b"],
                                  "in_rotation": False})
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"] == "forbidden"
        status = httpx.get(f"{gateway}/ops/api/status", cookies=cookies).json()
        systems = [s["id"] for g in status["groups"] for s in g["systems"]]
        assert SYSTEM in systems
        unchecked = httpx.post(f"{gateway}/ops/api/rotation", cookies=cookies,
                               json={"system": SYSTEM, "instance": "x", "in_rotation": True})
        assert unchecked.status_code == 403  # no CSRF header: refused before anything
        assert re.search(r"CSRF", unchecked.json()["error_description"])
