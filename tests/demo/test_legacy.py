"""The demo's legacy systems: a signed-header one behind the proxy and a CAS client.

Both run for real on free loopback ports next to the gateway, with a systems file that
is the shipped one pointed at those ports. The browser tests follow ``/go/…`` (精准到达)
through the login page to the system the region calls for; the others check that each
legacy app really verifies what it receives (a bad signature, a replayed ticket).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Page, expect

from connectors.signed_header import sign
from demo.legacy import create_cas_app, create_signed_header_app
from demo.run import demo_config, demo_legacy_apps
from gateway.app import create_app
from gateway.config import load_config
from gateway.store.memory import MemoryStore
from tests.support.browser import at
from tests.support.demo import demo_systems_file
from tests.support.gateway import CITIZEN, DEMO_PASSWORD, REPO, form_field, with_systems
from tests.support.servers import free_port, serve

BDC = "430000-BDC-001"
PROVINCE = "湖南省政务服务平台（演示）"
YUELU = "长沙市岳麓区不动产登记（演示，旧系统）"
SECRET = "a-test-only-signed-header-secret-0123456789"


@dataclass(frozen=True)
class Stack:
    gateway: str
    province: str  # signed-header
    yuelu: str  # cas


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    gateway_port, province_port, yuelu_port = free_port(), free_port(), free_port()
    systems_file = demo_systems_file(tmp_path_factory.mktemp("legacy"), {
        "hunan-province": province_port, "yuelu-bdc": yuelu_port})
    shipped = load_config(REPO / "config" / "roam.toml", env={})
    config = with_systems(demo_config(shipped, gateway_port=gateway_port, rp_ports={}),
                          systems_file)
    legacy = demo_legacy_apps(config)
    assert legacy["hunan-province"][0] == f"http://127.0.0.1:{province_port}"
    assert legacy["yuelu-bdc"][0] == f"http://127.0.0.1:{yuelu_port}"
    with (serve(create_app(config, store=MemoryStore()), gateway_port) as gateway,
          serve(legacy["hunan-province"][1], province_port) as province,
          serve(legacy["yuelu-bdc"][1], yuelu_port) as yuelu):
        yield Stack(gateway, province, yuelu)


def province_page(stack: Stack) -> str:
    """The province's proxied system: its own host (*.localhost is loopback), the
    gateway's port."""
    return stack.gateway.replace("127.0.0.1", "hunan-province.localhost") + "/"


def _log_in(page: Page, stack: Stack) -> None:
    page.wait_for_url(lambda url: at(url, stack.gateway, "/login"))
    expect(page.locator("h1")).to_have_text("登录")
    page.fill("#username", CITIZEN)
    page.fill("#password", DEMO_PASSWORD)
    page.click("#login-submit")


# --- in a browser: /go/… through login to the right legacy system --------------------


def test_go_reaches_the_signed_header_system_through_the_proxy(stack: Stack,
                                                                page: Page) -> None:
    # 常德市武陵区 has no system for 不动产登记: the province's (signed-header) handles it.
    page.goto(f"{stack.gateway}/go/{BDC}?region=430702")
    _log_in(page, stack)
    page.wait_for_url(province_page(stack))  # on its own host, through the hand-over hop
    expect(page.locator("#system")).to_have_text(PROVINCE)
    expect(page.locator("#who")).to_have_text("张*")  # from claims whose signature verified
    expect(page.locator("#via")).to_contain_text("签名已校验")
    expect(page.locator("#region")).to_have_text("430102")
    expect(page.locator("#acr")).to_have_text("L2")
    # A reload is a new request, newly signed (a fresh nonce), and verifies again.
    page.reload()
    expect(page.locator("#who")).to_have_text("张*")


def test_go_reaches_the_cas_system_by_region(stack: Stack, page: Page) -> None:
    page.goto(f"{stack.gateway}/go/{BDC}?region=430104")  # 岳麓区 has its own system
    _log_in(page, stack)
    page.wait_for_url(f"{stack.yuelu}/", timeout=5_000)
    expect(page.locator("#system")).to_have_text(YUELU)
    expect(page.locator("#who")).to_have_text("张*")


def test_cas_system_logs_in_through_the_gateway(stack: Stack, page: Page) -> None:
    page.goto(f"{stack.yuelu}/")  # no session there: off to the gateway's /cas/login
    _log_in(page, stack)
    page.wait_for_url(f"{stack.yuelu}/")  # back with a ticket, validated, ticket dropped
    expect(page.locator("#system")).to_have_text(YUELU)
    expect(page.locator("#who")).to_have_text("张*")
    expect(page.locator("#sub")).to_have_text("c-0001")
    expect(page.locator("#region")).to_have_text("430102")
    expect(page.locator("#via")).to_contain_text("CAS")
    # Now the gateway session exists: the province's system is one click, no login page.
    page.goto(f"{stack.gateway}/go/{BDC}?region=430702")
    page.wait_for_url(province_page(stack))
    expect(page.locator("#who")).to_have_text("张*")


# --- without a browser: each legacy app checks what it receives ----------------------


def _signed(path: str, *, secret: str = SECRET, nonce: str | None = None,
            claims: dict[str, str] | None = None) -> dict[str, str]:
    values = {
        "sub": "c-0001", "acr": "L2",
        "claims": base64.urlsafe_b64encode(json.dumps(
            claims or {"name": "张三", "region": "430102"}, ensure_ascii=False,
            separators=(",", ":"), sort_keys=True).encode()).rstrip(b"=").decode(),
        "timestamp": str(int(time.time())), "nonce": nonce or secrets.token_urlsafe(18)}
    values["signature"] = sign(secret.encode(), "GET", path, **values)
    return {f"X-Roam-{k.capitalize()}": v for k, v in values.items()}


def test_signed_header_app_shows_only_what_a_valid_signature_proves() -> None:
    app = create_signed_header_app(title=PROVINCE, secret=SECRET)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        ok = client.get("/records?id=7", headers=_signed("/records?id=7"))
        assert ok.status_code == 200
        assert 'id="who">张*<' in ok.text
        assert "张三" not in ok.text

        missing = client.get("/")
        assert missing.status_code == 401
        assert "身份校验失败" in missing.text

        wrong_key = client.get("/", headers=_signed("/", secret="x" * 40))
        assert wrong_key.status_code == 401
        assert "bad signature" in wrong_key.text

        tampered = _signed("/")
        tampered["X-Roam-Claims"] = base64.urlsafe_b64encode(
            '{"name":"李四"}'.encode()).rstrip(b"=").decode()
        assert client.get("/", headers=tampered).status_code == 401

        other_path = client.get("/admin", headers=_signed("/"))  # signed for another path
        assert other_path.status_code == 401

        once = _signed("/")
        assert client.get("/", headers=once).status_code == 200
        replayed = client.get("/", headers=once)
        assert replayed.status_code == 401
        assert "nonce already used" in replayed.text


def _ticket_url(http: httpx.Client, stack: Stack) -> str:
    """Log in at the gateway as the CAS app sends a browser to; the ticket URL it returns."""
    to_gateway = http.get(f"{stack.yuelu}/")
    assert to_gateway.status_code == 302
    assert to_gateway.headers["location"].startswith(f"{stack.gateway}/cas/login?service=")
    to_login = http.get(to_gateway.headers["location"])
    assert to_login.status_code == 303
    page = http.get(stack.gateway + to_login.headers["location"])
    if page.status_code == 303:  # /login?next=… may hand on to the page itself
        page = http.get(stack.gateway + page.headers["location"])
    back = http.post(f"{stack.gateway}/login", data={
        "csrf_token": form_field(page.text, "csrf_token"), "r": form_field(page.text, "r"),
        "username": CITIZEN, "password": DEMO_PASSWORD})
    assert back.status_code == 303, back.text
    issued = http.get(stack.gateway + back.headers["location"])
    assert issued.status_code == 302
    location = issued.headers["location"]
    assert location.startswith(f"{stack.yuelu}/?ticket=ST-")
    return str(location)


def test_cas_app_validates_a_ticket_once(stack: Stack) -> None:
    with httpx.Client(follow_redirects=False) as http:
        ticket_url = _ticket_url(http, stack)
        first = http.get(ticket_url)
        assert first.status_code == 303
        assert first.headers["location"] == "/"
        home = http.get(f"{stack.yuelu}/")
        assert home.status_code == 200
        assert 'id="who">张*<' in home.text
        assert "张三" not in home.text
    with httpx.Client(follow_redirects=False) as thief:  # the same ticket, replayed
        replayed = thief.get(ticket_url)
        assert replayed.status_code == 401
        assert "INVALID_TICKET" in replayed.text
        assert thief.get(f"{stack.yuelu}/").status_code == 302  # no session was made
        forged = thief.get(f"{stack.yuelu}/?ticket=ST-forged")
        assert forged.status_code == 401
        assert "INVALID_TICKET" in forged.text


def test_cas_app_refuses_a_ticket_for_another_service(stack: Stack) -> None:
    with httpx.Client(follow_redirects=False) as http:
        ticket = _ticket_url(http, stack).split("ticket=", 1)[1]
    other = create_cas_app(title="别的系统", gateway_url=stack.gateway,
                           base_url="http://127.0.0.1:1")
    with serve(other) as url, httpx.Client(base_url=url) as client:
        refused = client.get(f"/?ticket={ticket}")
        assert refused.status_code == 401
        assert "INVALID_SERVICE" in refused.text
