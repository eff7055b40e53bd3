"""Seamless switching (无感切换) end to end: a client's token → a one-time URL → a fresh
browser that lands logged in at an RP, its own ``/authorize`` completing silently.

Everything is real: the gateway and two demo RPs (authlib's Starlette client) on free
loopback ports, the access token from the code flow through authlib's client, Chromium
through Playwright for the web-view. The store is a MemoryStore whose clock the expiry
test moves forward (the Redis side of tickets is in test_transfer_tickets.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Response, expect

from demo.run import demo_config, demo_rp_apps
from gateway.app import create_app
from gateway.config import load_config
from gateway.keys import KeyRing
from gateway.store.memory import MemoryStore
from tests.support.audit import audited, kept
from tests.support.browser import at, fresh_page
from tests.support.gateway import REPO, audit_file, config_on_port, log_in
from tests.support.rp import authorize_url, full_login, rp_client
from tests.support.servers import free_port, serve

OTHER_CITIZEN = "13900000002"  # c-0002 李四 in config/directory.toml
ITEM = "430000-GJJ-001"  # handled by the proxied hunan-province system (config/systems.toml)


class Clock:
    """The store's clock: real time, plus what a test lets pass."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@dataclass(frozen=True)
class Stack:
    gateway: str
    rp_a: str  # 长沙市政务服务
    rp_b: str  # 岳阳市政务服务
    clock: Clock
    trail: Path  # the gateway's audit file


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    shipped = load_config(REPO / "config" / "roam.toml", env={})
    gateway_port = free_port()
    ports = {"changsha-gov": free_port(), "yueyang-gov": free_port()}
    config = demo_config(shipped, gateway_port=gateway_port, rp_ports=ports)
    audit = config.settings.audit.model_copy(update={"path": str(audit_file(gateway_port))})
    config = config.revised(settings=config.settings.model_copy(update={"audit": audit}))
    rps = {client_id: app for client_id, (_, app) in demo_rp_apps(config).items()}
    clock = Clock()
    with (serve(create_app(config, store=MemoryStore(clock=clock)), gateway_port) as gateway,
          serve(rps["changsha-gov"], ports["changsha-gov"]) as rp_a,
          serve(rps["yueyang-gov"], ports["yueyang-gov"]) as rp_b):
        yield Stack(gateway, rp_a, rp_b, clock, audit_file(gateway_port))


def _token(stack: Stack, client_id: str = "hunan-miniapp", **settings: str) -> str:
    """An access token of the gateway for ``client_id``, by the ordinary code flow."""
    client = rp_client(client_id, stack.gateway, **settings)
    url, verifier = authorize_url(client, stack.gateway)
    with httpx.Client(base_url=stack.gateway) as browser:
        callback = log_in(browser, url)
    token = client.fetch_token(f"{stack.gateway}/token", authorization_response=callback,
                               code_verifier=verifier)
    return str(token["access_token"])


def _mint(stack: Stack, target: str, token: str) -> httpx.Response:
    return httpx.post(f"{stack.gateway}/sso/transfer-ticket", data={"target": target},
                      headers={"Authorization": f"Bearer {token}"})


def _transfer_url(stack: Stack, target: str, token: str) -> str:
    answer = _mint(stack, target, token)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body: dict[str, Any] = answer.json()
    assert 0 < body["expires_in"] <= 60
    url = str(body["transfer_url"])
    assert at(url, stack.gateway, "/sso/transfer")
    return url


def _with_target(url: str, target: str) -> str:
    parts = urlsplit(url)
    ticket = dict(p.split("=", 1) for p in parts.query.split("&"))["ticket"]
    query = urlencode({"ticket": ticket, "target": target})
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{query}"


def _expect_refused(page: Page, stack: Stack) -> None:
    expect(page.locator("h1")).to_have_text("链接已失效")
    expect(page.locator("#ref")).not_to_be_empty()
    assert at(page.url, stack.gateway, "/sso/transfer")
    assert not page.context.cookies(stack.gateway)  # no session, no cookie of any kind


def test_transfer_lands_logged_in_at_the_rp_without_a_login_page(stack: Stack,
                                                                  page: Page) -> None:
    url = _transfer_url(stack, f"{stack.rp_b}/login", _token(stack))
    assert not page.context.cookies()  # a fresh context: the web-view
    responses: list[Response] = []
    page.on("response", lambda response: responses.append(response))
    page.goto(url)
    page.wait_for_url(f"{stack.rp_b}/")
    expect(page.locator("#status")).to_have_text("已登录")
    expect(page.locator("#system")).to_have_text("岳阳市政务服务")
    expect(page.locator("#sub")).to_have_text("c-0001")
    expect(page.locator("#acr")).to_have_text("L2")  # the level the password login reached
    expect(page.locator("#amr")).to_have_text("pwd transfer")  # and how it got here
    urls = [r.url for r in responses]
    assert [urlsplit(u).path for u in urls] == [
        "/sso/transfer", "/login", "/authorize", "/callback", "/"], urls
    assert at(urls[2], stack.gateway, "/authorize")
    assert not any(at(u, stack.gateway, "/login") for u in urls), urls

    # The session is the gateway's own: another RP in the same web-view is silent too.
    page.goto(f"{stack.rp_a}/login")
    page.wait_for_url(f"{stack.rp_a}/")
    expect(page.locator("#status")).to_have_text("已登录")
    expect(page.locator("#amr")).to_have_text("pwd transfer")


def test_a_replayed_ticket_shows_the_error_page_and_makes_no_session(
        stack: Stack, browser: Browser) -> None:
    url = _transfer_url(stack, f"{stack.rp_b}/login", _token(stack))
    with fresh_page(browser) as first:
        first.goto(url)
        first.wait_for_url(f"{stack.rp_b}/")
    with fresh_page(browser) as second:
        second.goto(url)
        _expect_refused(second, stack)
        second.goto(f"{stack.rp_b}/login")  # and the RP still needs a login in this browser
        second.wait_for_url(lambda u: at(u, stack.gateway, "/login"))


def test_an_expired_ticket_is_refused(stack: Stack, page: Page) -> None:
    url = _transfer_url(stack, f"{stack.rp_b}/login", _token(stack))
    stack.clock.offset += 61
    try:
        page.goto(url)
        _expect_refused(page, stack)
    finally:
        stack.clock.offset -= 61


def test_a_ticket_for_another_target_is_refused_and_spent(stack: Stack, page: Page) -> None:
    url = _transfer_url(stack, f"{stack.rp_b}/login", _token(stack))
    page.goto(_with_target(url, f"{stack.rp_a}/login"))  # registered, but not its own
    _expect_refused(page, stack)
    page.goto(url)  # a tampered URL used the ticket up
    _expect_refused(page, stack)


def test_an_unregistered_target_is_refused_and_the_ticket_stays(stack: Stack,
                                                                page: Page) -> None:
    url = _transfer_url(stack, f"{stack.rp_b}/login", _token(stack))
    for target in ("https://evil.example/login", f"{stack.rp_b}/callback",
                   f"{stack.rp_b}/login/../callback", "//evil.example/"):
        page.goto(_with_target(url, target))
        _expect_refused(page, stack)
    page.goto(url)  # bad input changed nothing: the ticket still works, once
    page.wait_for_url(f"{stack.rp_b}/")
    expect(page.locator("#status")).to_have_text("已登录")


def test_minting_refuses_unregistered_targets(stack: Stack) -> None:
    token = _token(stack)
    for target in ("https://evil.example/", f"{stack.rp_b}/callback", f"{stack.rp_b}/",
                   f"{stack.gateway}/go/NO-SUCH-ITEM", f"{stack.gateway}/login",
                   f"{stack.gateway}/go/{ITEM}?region=430102&next=https://evil.example/",
                   f"{stack.rp_b}/login#x", "http://unknown.localhost/", ""):
        answer = _mint(stack, target, token)
        assert answer.status_code == 400, (target, answer.text)
        assert answer.json()["error"] == "invalid_request"


def test_minting_needs_a_live_token_of_an_allowed_client(stack: Stack) -> None:
    target = f"{stack.rp_b}/login"
    missing = httpx.post(f"{stack.gateway}/sso/transfer-ticket", data={"target": target})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    forged = _mint(stack, target, "not.a.token")
    assert forged.status_code == 401
    assert forged.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in forged.headers["www-authenticate"]
    # An RP's token: clients.toml does not allow it to mint.
    rp_token = _token(stack, "changsha-gov", redirect_uri=f"{stack.rp_a}/callback")
    refused = _mint(stack, target, rp_token)
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"
    token = _token(stack)
    revoked = httpx.post(f"{stack.gateway}/revoke",
                         data={"token": token, "client_id": "hunan-miniapp"})
    assert revoked.status_code == 200
    assert _mint(stack, target, token).json()["error"] == "invalid_token"


def test_a_go_link_and_a_proxied_host_are_targets(stack: Stack) -> None:
    token = _token(stack)
    go = f"{stack.gateway}/go/{ITEM}?region=430102"
    with httpx.Client() as browser:
        arrived = browser.get(_transfer_url(stack, go, token))
        assert arrived.status_code == 303
        assert arrived.headers["location"] == go
        onward = browser.get(go)  # /go finds the session: on to the system, no login
        assert onward.status_code == 303
        assert "/login" not in onward.headers["location"]
        assert urlsplit(onward.headers["location"]).hostname == "hunan-province.localhost"
    port = urlsplit(stack.gateway).port
    host = f"http://hunan-province.localhost:{port}/a?b=1"
    with httpx.Client() as browser:
        arrived = browser.get(_transfer_url(stack, host, token))
        assert arrived.status_code == 303
        assert arrived.headers["location"] == host
        assert arrived.cookies  # the issuer session the hand-over will find


def test_a_ticket_whose_grant_was_revoked_makes_no_session(stack: Stack,
                                                           page: Page) -> None:
    token = _token(stack)
    url = _transfer_url(stack, f"{stack.rp_b}/login", token)
    httpx.post(f"{stack.gateway}/revoke", data={"token": token, "client_id": "hunan-miniapp"})
    page.goto(url)
    expect(page.locator("h1")).to_have_text("链接已失效")
    assert not page.context.cookies(stack.gateway)


def test_a_ticket_is_used_once_across_gateway_processes_on_redis(redis_url: str,
                                                                  redis_prefix: str) -> None:
    """Two gateways sharing one Redis and one key ring (two processes of a deployment):
    sixteen browsers race one transfer URL over both; exactly one gets a session."""
    port, other_port = free_port(), free_port()
    config = config_on_port(port, backend="redis", redis_url=redis_url, prefix=redis_prefix)
    keys = KeyRing.ephemeral()
    with (serve(create_app(config, keys=keys), port) as gateway,
          serve(create_app(config, keys=keys), other_port) as other):
        with httpx.Client(base_url=gateway) as browser:
            _, token, _ = full_login(gateway, browser, "hunan-miniapp")
        target = "http://127.0.0.1:8002/login"  # yueyang-gov's initiate_login_uri
        minted = httpx.post(f"{gateway}/sso/transfer-ticket", data={"target": target},
                            headers={"Authorization": f"Bearer {token['access_token']}"})
        assert minted.status_code == 200, minted.text
        url = str(minted.json()["transfer_url"])
        urls = [url, url.replace(gateway, other)] * 8

        def enter(address: str) -> httpx.Response:
            with httpx.Client() as web_view:
                return web_view.get(address)

        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(enter, urls))
    arrived = [a for a in answers if a.status_code == 303]
    assert len(arrived) == 1
    assert arrived[0].headers["location"] == target
    assert "set-cookie" in arrived[0].headers
    refused = [a for a in answers if a.status_code == 400]
    assert len(refused) == 15
    assert all("链接已失效" in a.text and "set-cookie" not in a.headers for a in refused)


def test_no_ticket_or_token_reaches_a_log(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    token = _token(stack)
    caplog.set_level(logging.DEBUG)
    url = _transfer_url(stack, f"{stack.rp_b}/login", token)
    ticket = dict(p.split("=", 1) for p in urlsplit(url).query.split("&"))["ticket"]
    with httpx.Client() as web_view:
        assert web_view.get(url).status_code == 303
        assert web_view.get(url).status_code == 400  # the replay is logged too
    lines = [json.dumps(record.__dict__, default=str) for record in caplog.records
             if record.name.startswith(("roam", "uvicorn"))]  # the gateway's, not the test's
    assert audited(caplog.records, "transfer.ticket.redeem", "failure")  # a log line...
    assert kept(stack.trail, "transfer.ticket.redeem", "failure")  # ...and in the trail
    assert kept(stack.trail, "transfer.ticket.redeem", "success")  # (only in the trail)
    lines.append(stack.trail.read_text("utf-8"))
    assert not [line for line in lines if ticket in line or token in line]


def test_a_browser_with_another_persons_session_keeps_it(stack: Stack) -> None:
    """A transfer URL sent to someone logged in as someone else changes nothing (login
    CSRF); the same person's browser keeps its session too."""
    url = _transfer_url(stack, f"{stack.rp_b}/login", _token(stack))  # for c-0001
    client = rp_client("changsha-gov", stack.gateway, redirect_uri=f"{stack.rp_a}/callback")
    with httpx.Client(base_url=stack.gateway) as browser:
        log_in(browser, authorize_url(client, stack.gateway)[0], username=OTHER_CITIZEN)
        before = dict(browser.cookies)
        refused = browser.get(url)
        assert refused.status_code == 400
        assert "链接已失效" in refused.text
        assert "set-cookie" not in refused.headers
        assert dict(browser.cookies) == before
        page = browser.get(f"{stack.gateway}/my/logins")
        assert page.status_code == 200  # still logged in, as the other person
        assert '<span id="who">李*</span>' in page.text
