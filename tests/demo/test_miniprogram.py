"""The demo's mini-program page end to end in Chromium, as ``make demo`` wires it.

Everything is real and on free loopback ports (tests/support/demo.py): the gateway, mock
WeChat and Alipay, the verification service its binding asks over HTTP (verifier
``http``), the page, the demo RP 长沙 and the province's legacy system behind the proxy on
its own host (``hunan-province.localhost``: Chromium resolves ``*.localhost`` to loopback). The page
is driven as a person would; each one-time URL it shows is opened in a fresh browser
context, as a web-view with none of the browser's cookies.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Response, expect

from tests.support.audit import audited
from tests.support.browser import at, fresh_page
from tests.support.demo import MiniProgramDemo

ZHANG = ("张三", "430102199001010016")  # c-0001 in config/directory.toml (fictional)
LI = ("李四", "430104198506150039")  # c-0002


@pytest.fixture(scope="module")
def stack(miniprogram_demo: MiniProgramDemo) -> MiniProgramDemo:
    """The demo's mini-program side (tests/support/demo.py), for the whole module."""
    return miniprogram_demo


def _log_in(page: Page, stack: MiniProgramDemo, user: str, *, phone: bool = False) -> None:
    page.goto(f"{stack.page}/")
    page.check(f'input[name="user"][value="{user}"]')
    if phone:
        page.check("#share-phone")
    page.click("#login")
    expect(page.locator("#flash")).to_contain_text("登录成功")


def _bind(page: Page, person: tuple[str, str]) -> None:
    page.fill("#name", person[0])
    page.fill("#id-number", person[1])
    page.click("#bind")


def _transfer_url(page: Page, target: str) -> str:
    page.check(f'input[name="target"][value="{target}"]')
    page.click("#get-link")
    link = page.locator("#open-webview")
    expect(link).to_have_attribute("target", "_blank")  # a window of its own: the web-view
    url = str(link.get_attribute("href"))
    expect(page.locator("#transfer-url")).to_have_text(url)
    return url


@contextlib.contextmanager
def _web_view(browser: Browser) -> Iterator[tuple[Page, list[Response]]]:
    """A fresh context (no cookies of ours, as a web-view) recording every response."""
    with fresh_page(browser) as view:
        responses: list[Response] = []
        view.on("response", lambda response: responses.append(response))
        yield view, responses


@pytest.fixture(scope="module")
def zhang(stack: MiniProgramDemo, browser: Browser) -> Iterator[Page]:
    """The page after a WeChat user (sharing a phone number) bound to 张三: L2 by real
    name, then L3 by a face scan on the verification service, then logged in again."""
    with fresh_page(browser) as page:
        _log_in(page, stack, "wechat:o-demo-zhang", phone=True)
        expect(page.locator("#sub")).to_have_text(re.compile(r"^ch-"))  # the channel's own
        expect(page.locator("#acr")).to_contain_text("L1")
        expect(page.locator("#verified-level")).to_contain_text("L1")
        expect(page.locator("#phone")).to_have_text("138****0091")

        _bind(page, ZHANG)
        expect(page.locator("#flash")).to_contain_text("实名核验通过")
        expect(page.locator("#bound")).to_contain_text("c-0001")
        expect(page.locator("#bound")).to_contain_text("L2")

        page.click("#face-pass")
        expect(page.locator("#flash")).to_contain_text("人脸核验通过")
        expect(page.locator("#sub")).to_have_text("c-0001")  # the silent login: the citizen
        expect(page.locator("#verified-level")).to_contain_text("L3")
        expect(page.locator("#acr")).to_contain_text("L1")  # a channel login is L1 always
        # The gateway asked the service over HTTP, and fetched the face result itself.
        assert "/v1/realname/verify" in stack.verification_calls
        assert any(re.fullmatch(r"/v1/face/sessions/[\w-]+", path)
                   for path in stack.verification_calls), stack.verification_calls
        yield page


def test_a_wechat_user_binds_and_switches_into_an_rp_logged_in(
        zhang: Page, stack: MiniProgramDemo, browser: Browser) -> None:
    rows = zhang.locator("#history tr")
    expect(rows).to_have_count(3)  # heading, the first login, the silent one after the face
    expect(rows.nth(2)).to_contain_text("c-0001")
    url = _transfer_url(zhang, "changsha-gov")
    assert at(url, stack.gateway, "/sso/transfer")
    with _web_view(browser) as (view, responses):
        view.goto(url)
        view.wait_for_url(f"{stack.rp}/")
        expect(view.locator("#status")).to_have_text("已登录")
        expect(view.locator("#system")).to_have_text("长沙市政务服务")
        expect(view.locator("#sub")).to_have_text("c-0001")
        expect(view.locator("#amr")).to_have_text("wechat transfer")
        expect(view.locator("#acr")).to_have_text("L1")
    paths = [urlsplit(r.url).path for r in responses]
    assert paths == ["/sso/transfer", "/login", "/authorize", "/callback", "/"], paths
    assert not any(at(r.url, stack.gateway, "/login") for r in responses)


def test_a_transfer_to_the_proxied_system_arrives_through_the_hand_over(
        zhang: Page, stack: MiniProgramDemo, browser: Browser) -> None:
    url = _transfer_url(zhang, "host:hunan-province")
    assert "需要 L2" in zhang.locator("#step-switch").inner_text()  # said before the switch
    with _web_view(browser) as (view, responses):
        view.goto(url)
        # The system needs L2 and a channel session is L1: the gateway's step-up, on the
        # phone number WeChat verified (the simulated SMS shows its code on the page).
        expect(view.locator("#stepup-reason")).to_contain_text("L2")
        view.fill("#otp", view.locator("#demo-code").inner_text())
        view.click("#stepup-submit")
        view.wait_for_url(f"{stack.province}/")
        expect(view.locator("#system")).to_have_text("湖南省政务服务平台（演示）")
        expect(view.locator("#sub")).to_have_text("c-0001")
        expect(view.locator("#acr")).to_have_text("L2")
        expect(view.locator("#via")).to_contain_text("签名已校验")
    assert any(at(r.url, stack.gateway, "/sso/handover") for r in responses)
    assert not any(at(r.url, stack.gateway, "/login") for r in responses)


def test_a_system_that_needs_l3_is_reached_after_a_face_step_up(
        zhang: Page, stack: MiniProgramDemo, browser: Browser) -> None:
    """The channel session is L1 but the binding reached L3, and the bound login carries
    the citizen's name and ID number: the gateway's step-up (SMS, then face) lifts it."""
    url = _transfer_url(zhang, "xiangtan-gov")
    assert "短信验证码和人脸核验" in zhang.locator("#step-switch").inner_text()
    with _web_view(browser) as (view, responses):
        view.goto(url)
        # L1 → L3 is two factors more: the SMS code to the phone WeChat verified, then the
        # demo's simulated face check
        view.fill("#otp", view.locator("#demo-code").inner_text())
        view.click("#stepup-submit")
        view.click("#face-start")
        view.wait_for_url(f"{stack.rp_l3}/")
        expect(view.locator("#status")).to_have_text("已登录")
        expect(view.locator("#sub")).to_have_text("c-0001")
        expect(view.locator("#acr")).to_have_text("L3")
        expect(view.locator("#amr")).to_have_text("wechat transfer sms face")
        expect(view.locator("#who")).to_have_text("张*")  # the bound citizen's name, masked
        expect(view.locator("#region")).to_have_text("430102")
    assert not any(at(r.url, stack.gateway, "/login") for r in responses)


def test_wechat_and_alipay_identities_of_one_person_end_at_the_same_sub(
        stack: MiniProgramDemo, page: Page) -> None:
    _log_in(page, stack, "wechat:o-demo-li")
    _bind(page, LI)
    expect(page.locator("#bound")).to_contain_text("c-0002")
    page.click("#relogin")  # L2 is enough here: a new code, now the citizen's token
    expect(page.locator("#sub")).to_have_text("c-0002")
    expect(page.locator("#same-person")).to_have_count(0)

    page.click("#switch-user")
    _log_in(page, stack, "alipay:2088000000000102")
    expect(page.locator("#sub")).to_have_text(re.compile(r"^ch-"))
    _bind(page, LI)
    page.click("#relogin")
    expect(page.locator("#sub")).to_have_text("c-0002")
    expect(page.locator("#verified-level")).to_contain_text("L2")
    expect(page.locator("#same-person")).to_contain_text("c-0002")


def test_gateway_errors_are_shown_in_chinese(stack: MiniProgramDemo, page: Page,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _log_in(page, stack, "alipay:2088000000000101")
    _bind(page, ("张三", "430102199001010017"))  # a wrong check digit
    expect(page.locator("#flash")).to_contain_text("身份证号码无效")
    _bind(page, ("张四", ZHANG[1]))
    expect(page.locator("#flash")).to_contain_text("姓名与身份证号码不一致")
    expect(page.locator("#flash")).to_have_attribute("role", "alert")
    _bind(page, ZHANG)
    page.click("#face-fail")  # the service says the face is someone else's
    expect(page.locator("#flash")).to_contain_text("人脸核验未通过")
    expect(page.locator("#verified-level")).to_contain_text("L1")  # the login's, unchanged
    expect(page.locator("#bind")).to_be_visible()  # the check is spent: bind, scan again
    logged = "\n".join(json.dumps(r.__dict__, default=str, ensure_ascii=False)
                       for r in caplog.records)
    assert audited(caplog.records, "binding.bind", "failure")  # the audit saw the refusals...
    assert ZHANG[1] not in logged  # ...with the ID number masked
    assert "430***********0016" in logged

