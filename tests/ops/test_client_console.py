"""The console's page for registered clients, in Chromium against a gateway on the test
Redis: an operator invites a county, the county's system registers asking for an ID
number, the operator approves it without the ID number, and a viewer can only look."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from gateway.app import create_app
from tests.support.browser import fresh_page
from tests.support.gateway import config_on_port
from tests.support.servers import free_port, serve

PASSWORD = "Ops@2026"  # config/operators.toml's demo operators (fictional)
SECRETS = {"ops-demo": "UGGTFWJD6QVTSZRN5TGEJWPF76RDUBSQ",
           "ops-viewer": "V7ZXPEZJ5DUHJ3POCOTPVLR5S4JJS5RR"}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture
def gateway(redis_url: str, redis_prefix: str) -> Iterator[str]:
    port = free_port()
    config = config_on_port(port, backend="redis", redis_url=redis_url, prefix=redis_prefix)
    with serve(create_app(config), port) as url:
        yield url


def log_in(page: Page, gateway: str, name: str) -> None:
    page.goto(f"{gateway}/ops/clients")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.fill("#code", pyotp.TOTP(SECRETS[name]).now())
    page.click("#ops-login")
    page.wait_for_url(f"{gateway}/ops")
    page.click("#ops-clients")
    page.wait_for_url(f"{gateway}/ops/clients")


def register(gateway: str, token: str) -> dict[str, Any]:
    answer = httpx.post(f"{gateway}/register", headers={"Authorization": f"Bearer {token}"},
                        json={"client_name": "芙蓉区不动产登记", "scope": "openid profile id_card",
                              "redirect_uris": ["http://127.0.0.1:8021/cb"]})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_an_operator_invites_a_county_and_approves_its_system_narrowed(
        gateway: str, page: Page, browser: Browser) -> None:
    log_in(page, gateway, "ops-demo")
    expect(page.locator("#clients")).to_contain_text("暂无自助注册的应用")
    page.fill("#region", "430102")
    page.fill("#uses", "1")
    page.click("#invite button")
    token = page.locator("#invite-token").inner_text()
    answer = register(gateway, token)
    assert answer["roam_status"] == "pending"

    page.goto(f"{gateway}/ops/clients")
    card = page.locator(f'[data-client="{answer["client_id"]}"]')
    expect(card).to_contain_text("待审批")
    expect(card).to_contain_text("id_number")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "ops_clients.png"), full_page=True)
    card.locator('input[value="id_number"]').uncheck()
    card.locator('input[name="reason"]').fill("办理不动产登记无需身份证号")
    card.locator('button[value="approve"]').click()
    page.wait_for_url(f"{gateway}/ops/clients?done=1")
    expect(card).to_contain_text("已启用")
    expect(card).to_contain_text("ops:ops-demo")

    cookies = {c["name"]: c["value"] for c in page.context.cookies(gateway)}
    listed = httpx.get(f"{gateway}/ops/api/clients", cookies=cookies).json()["clients"]
    mine = next(c for c in listed if c["client_id"] == answer["client_id"])
    assert mine["status"] == "active"
    assert "id_number" not in mine["claims"]
    assert mine["awaiting"] == {}
    # the client can now authorize: the page asks the citizen to log in
    start = httpx.get(f"{gateway}/authorize", params={
        "client_id": answer["client_id"], "redirect_uri": "http://127.0.0.1:8021/cb",
        "response_type": "code", "scope": "openid profile", "code_challenge": "x" * 43,
        "code_challenge_method": "S256"})
    assert start.status_code == 303, start.text

    with fresh_page(browser) as viewer:
        log_in(viewer, gateway, "ops-viewer")
        expect(viewer.locator(f'[data-client="{answer["client_id"]}"]')).to_be_visible()
        expect(viewer.locator("form.decide")).to_have_count(0)
        expect(viewer.locator("#invite")).to_have_count(0)
        seen = {c["name"]: c["value"] for c in viewer.context.cookies(gateway)}
        denied = httpx.post(f"{gateway}/ops/api/clients/invite", cookies=seen,
                            headers={"X-CSRF-Token": seen["roam_csrf"]},
                            json={"region": "4301", "expires_in": 3600, "uses": 1})
        assert denied.status_code == 403
        assert denied.json()["error"] == "forbidden"


def test_the_api_invites_and_refuses_what_does_not_fit(gateway: str, page: Page) -> None:
    log_in(page, gateway, "ops-demo")
    cookies = {c["name"]: c["value"] for c in page.context.cookies(gateway)}
    headers = {"X-CSRF-Token": cookies["roam_csrf"]}
    made = httpx.post(f"{gateway}/ops/api/clients/invite", cookies=cookies, headers=headers,
                      json={"region": "4301", "expires_in": 3600, "uses": 2})
    assert made.status_code == 200, made.text
    answer = register(gateway, made.json()["initial_access_token"])
    for body, status in (({"region": "长沙"}, 400),
                         ({"client_id": answer["client_id"], "decision": "approve"}, 400),
                         ({"client_id": "rp-nobody", "decision": "reject", "reason": "x"},
                          400)):
        refused = httpx.post(f"{gateway}/ops/api/clients/"
                             f"{'invite' if 'region' in body else 'decide'}",
                             cookies=cookies, headers=headers, json=body)
        assert refused.status_code == status, refused.text
        assert refused.json()["error"] == "invalid_request"
    rejected = httpx.post(f"{gateway}/ops/api/clients/decide", cookies=cookies,
                          headers=headers, json={"client_id": answer["client_id"],
                                                 "decision": "reject", "reason": "用途不明"})
    assert rejected.status_code == 200, rejected.text
    listed = httpx.get(f"{gateway}/ops/api/clients", cookies=cookies).json()["clients"]
    assert listed[0]["status"] == "rejected"
