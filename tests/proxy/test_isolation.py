"""In Chromium: a page of one proxied system can neither read nor use the issuer or another
system (gateway/proxy/, gateway/legacy/handover.py, gateway/host_sessions.py).

Two legacy systems, ``alpha`` and ``beta``, sit behind one gateway, each page carrying a
script's worth of reach (what ``page.evaluate`` runs is what a script in that page could
run). In production mode each is served on a host of its own (``*.localhost`` is loopback
in Chromium); in path mode (``/s/<id>/``, the opt-in) they share the issuer's origin, where
scripts cannot be kept apart (docs/security.md), but each system still only ever receives
its own cookies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gateway.app import create_app
from gateway.config import Config
from gateway.store.memory import MemoryStore
from tests.support.browser import at
from tests.support.gateway import CITIZEN, DEMO_PASSWORD, config_on_port
from tests.support.servers import free_port, serve

SECRET = "isolation-test-signed-header-secret-0123456789"

SYSTEMS = """
[[item]]
code = "430000-GJJ-001"
name = "住房公积金提取"

[[item]]
code = "430000-SB-001"
name = "社会保险参保查询"
""" + "".join(f"""
[[system]]
id = "{name}"
name = "{name}"
region = "430000"
level = "province"
instances = ["http://127.0.0.1:{{{name}}}"]
connector = "signed-header"
connector_settings = {{{{ secret = "{SECRET}" }}}}
items = ["{item}"]
claims = ["name"]
{{{name}_hosts}}
""" for name, item in (("alpha", "430000-GJJ-001"), ("beta", "430000-SB-001")))


@dataclass
class Legacy:
    """A legacy system that records every request it gets: path, cookies, identity."""

    name: str
    seen: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def page(request: Request) -> Response:
            self._record(request)
            response = HTMLResponse(f"<h1 id='system'>{self.name}</h1>")
            # a cookie for the whole site, readable by scripts, as legacy apps set them
            response.set_cookie(f"{self.name}_app", "own", path="/", httponly=False)
            return response

        async def anything(request: Request) -> Response:
            self._record(request)
            return JSONResponse({"system": self.name, "secret": f"{self.name}-data"})

        return Starlette(routes=[Route("/page", page),
                                 Route("/{rest:path}", anything, methods=["GET", "POST"])])

    def _record(self, request: Request) -> None:
        self.seen.append({"path": request.url.path, "method": request.method,
                          "cookie": request.headers.get("cookie", ""),
                          "sub": request.headers.get("x-roam-sub", "")})


@dataclass
class Stack:
    gateway: str
    port: int
    alpha: Legacy
    beta: Legacy
    hosts: bool  # each system on a host of its own (else path mode)

    def url(self, system: str, path: str) -> str:
        if self.hosts:
            return f"http://{system}.localhost:{self.port}{path}"
        return f"{self.gateway}/s/{system}{path}"


def stack_config(tmp: Path, port: int, ports: dict[str, int], *, hosts: bool) -> Config:
    systems = tmp / "systems.toml"
    systems.write_text(SYSTEMS.format(
        alpha=ports["alpha"], beta=ports["beta"],
        alpha_hosts='hosts = ["alpha.localhost"]' if hosts else "",
        beta_hosts='hosts = ["beta.localhost"]' if hosts else ""), encoding="utf-8")
    config = config_on_port(port)
    settings = config.settings
    return config.revised(settings=settings.model_copy(update={
        "routing": settings.routing.model_copy(update={"systems_file": str(systems)}),
        "proxy": settings.proxy.model_copy(update={"path_mode": not hosts}),
    }))


@contextlib.contextmanager
def running(tmp: Path, *, hosts: bool) -> Iterator[Stack]:
    alpha, beta = Legacy("alpha"), Legacy("beta")
    with serve(alpha.app()) as alpha_url, serve(beta.app()) as beta_url:
        ports = {"alpha": int(alpha_url.rsplit(":", 1)[1]),
                 "beta": int(beta_url.rsplit(":", 1)[1])}
        port = free_port()
        config = stack_config(tmp, port, ports, hosts=hosts)
        with serve(create_app(config, store=MemoryStore()), port) as gateway:
            yield Stack(gateway, port, alpha, beta, hosts)


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Production mode: each system on a host of its own."""
    with running(tmp_path_factory.mktemp("hosted"), hosts=True) as stack:
        yield stack


@pytest.fixture(scope="module", params=[True, False], ids=["own-hosts", "path-mode"])
def either(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running(tmp_path_factory.mktemp("either"), hosts=bool(request.param)) as stack:
        yield stack


def open_both(page: Page, stack: Stack) -> None:
    """Log in on the way to alpha's page, then open beta's (no second login)."""
    page.goto(stack.url("alpha", "/page"))
    page.wait_for_url(lambda url: at(url, stack.gateway, "/login"))
    page.fill("#username", CITIZEN)
    page.fill("#password", DEMO_PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(stack.url("alpha", "/page"))
    page.goto(stack.url("beta", "/page"))
    assert page.locator("#system").inner_text() == "beta"
    page.goto(stack.url("alpha", "/page"))
    assert page.locator("#system").inner_text() == "alpha"


READ = """async (url) => {
    try {
        const r = await fetch(url, {credentials: "include"});
        return "read:" + (await r.text());
    } catch (e) { return "blocked"; }
}"""

FRAME = """async (url) => {
    const frame = document.createElement("iframe");
    frame.src = url;
    document.body.appendChild(frame);
    await new Promise(done => { frame.onload = done; setTimeout(done, 3000); });
    try { return "read:" + frame.contentDocument.body.innerHTML; }
    catch (e) { return "blocked"; }
}"""

POST = """async (url) => {
    try {
        await fetch(url, {method: "POST", mode: "no-cors", credentials: "include",
                          body: "amount=1000"});
    } catch (e) {}
    return "sent";
}"""


def test_a_systems_page_cannot_read_the_issuer_or_another_system(hosted: Stack,
                                                                  page: Page) -> None:
    open_both(page, hosted)
    # the issuer's pages: neither fetched nor framed (its 我的登录 page holds a CSRF token)
    assert page.evaluate(READ, f"{hosted.gateway}/my/logins") == "blocked"
    assert page.evaluate(FRAME, f"{hosted.gateway}/my/logins") == "blocked"
    # another system's data, with the person's session there: not readable either
    assert page.evaluate(READ, hosted.url("beta", "/account")) == "blocked"
    # and no cookie of the issuer or of beta is visible to alpha's scripts
    visible = page.evaluate("document.cookie")
    assert "alpha_app=own" in visible
    assert "beta_app" not in visible
    assert "roam" not in visible


def test_a_systems_page_cannot_act_on_another_system_as_the_person(hosted: Stack,
                                                                   page: Page) -> None:
    open_both(page, hosted)
    page.evaluate(POST, hosted.url("beta", "/transfer"))
    page.wait_for_timeout(300)
    acted = [s for s in hosted.beta.seen if s["path"] == "/transfer" and s["sub"]]
    assert acted == [], "beta received a request made by alpha's page in the person's name"


def test_a_systems_page_cannot_frame_another_system(hosted: Stack, page: Page) -> None:
    """A hidden frame of beta on alpha's page would run the hand-over in the frame and let
    a click there act on beta as the person. (Chromium counts two ``*.localhost`` hosts as
    different sites; the same-site case, sibling hosts of one domain, is checked with the
    Fetch Metadata a frame sends in tests/proxy/test_hosts.py.)"""
    open_both(page, hosted)
    hosted.beta.seen.clear()
    page.context.clear_cookies(domain="beta.localhost")  # even a fresh hop is refused
    page.evaluate(FRAME, hosted.url("beta", "/page"))
    page.evaluate(FRAME, hosted.url("beta", "/account"))
    assert [s for s in hosted.beta.seen if s["sub"]] == []


def test_a_systems_page_cannot_use_the_issuer_as_the_person(hosted: Stack,
                                                            page: Page) -> None:
    open_both(page, hosted)
    # forced logouts, with the person's cookies: refused without the page's CSRF token
    for path in ("/my/logins/logout", "/logout"):
        page.evaluate(POST, f"{hosted.gateway}{path}")
    hosted.beta.seen.clear()
    page.context.clear_cookies(domain="beta.localhost")  # beta must ask the issuer again
    page.goto(hosted.url("beta", "/page"))
    assert page.locator("#system").inner_text() == "beta", "still logged in at the issuer"
    page_requests = [s for s in hosted.beta.seen if s["path"] == "/page"]
    assert [s["sub"] for s in page_requests] == ["c-0001"]


def test_a_system_only_ever_receives_its_own_cookies(either: Stack, page: Page) -> None:
    open_both(page, either)
    # alpha's script plants a cookie for the whole origin it is on
    page.evaluate("document.cookie = 'planted=by-alpha; path=/'")
    either.beta.seen.clear()
    either.alpha.seen.clear()
    page.goto(either.url("beta", "/page"))
    page.goto(either.url("alpha", "/page"))
    beta_got = " ".join(s["cookie"] for s in either.beta.seen)
    alpha_got = " ".join(s["cookie"] for s in either.alpha.seen)
    assert "beta_app=own" in beta_got, "beta gets the cookie it set, under its own name"
    assert "alpha_app" not in beta_got
    assert "planted" not in beta_got
    assert "roam" not in beta_got + alpha_got, "never the gateway's cookies"
    assert "beta_app" not in alpha_got
