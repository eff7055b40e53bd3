"""Systems served on host names of their own, through the real app (gateway/proxy/hosts.py,
gateway/legacy/handover.py, gateway/host_sessions.py).

The gateway's issuer is ``https://sso.roam.test`` with no cookie domain; the systems ``gjj``
and ``shebao`` are served on ``gjj.roam.test`` and, on an unrelated domain,
``shebao.changde.example``. All are reached on one
loopback port with the ``Host`` header a browser would send, as behind a proxy ending TLS;
:class:`Browser` keeps cookies per host as a browser does (they are ``Secure`` and the
wire here is plain http, so an HTTP library's own jar would not send them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from http.cookies import Morsel, SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.signed_header import verify
from gateway.app import create_app
from gateway.config import Config
from gateway.errors import ConfigError
from gateway.keys import generate_key_file
from gateway.urls import host_name
from tests.support.gateway import CITIZEN, DEMO_PASSWORD, config_on_port, form_field
from tests.support.servers import free_port, serve

SECRET = "host-routing-test-secret-0123456789abcdef"
SYSTEM_HOST = "gjj.roam.test"
OTHER_HOST = "shebao.changde.example"  # another domain: no cookie is shared
GATEWAY_HOST = "sso.roam.test"

SYSTEMS = """
[[item]]
code = "430000-GJJ-001"
name = "住房公积金提取"

[[system]]
id = "gjj"
name = "公积金（独立域名）"
region = "430000"
level = "province"
instances = ["http://127.0.0.1:{port}"]
connector = "signed-header"
connector_settings = {{ secret = "{secret}" }}
items = ["430000-GJJ-001"]
claims = ["name"]
hosts = [{hosts}]

[[system]]
id = "shebao"
name = "社保（独立域名）"
region = "430000"
level = "province"
instances = ["http://127.0.0.1:{port}"]
connector = "signed-header"
connector_settings = {{ secret = "{secret}" }}
items = ["430000-SB-001"]
claims = ["name"]
hosts = ["shebao.changde.example"]

[[item]]
code = "430000-SB-001"
name = "社会保险参保查询"
"""


def legacy_system() -> Starlette:
    """Checks every signature the way a real system would, then echoes what it saw."""
    seen: dict[str, float] = {}

    async def echo(request: Request) -> Response:
        raw = request.scope["raw_path"].decode("latin-1")
        query = request.scope["query_string"].decode("latin-1")
        path = raw + (f"?{query}" if query else "")
        verified = verify(request.headers.items(), request.method, path, secret=SECRET,
                          now=time.time(), seen_nonces=seen)
        return JSONResponse({"path": path, "sub": verified.sub,
                             "headers": {k.lower(): v for k, v in request.headers.items()}})

    async def moved(request: Request) -> Response:
        own = f"http://{request.headers['host']}"
        return Response(status_code=302, headers={"Location": f"{own}/landing?x=1"})

    async def cookie(request: Request) -> Response:
        response = JSONResponse({"cookie": request.headers.get("cookie", "")})
        response.headers.append("Set-Cookie", "app=1; Path=/; Domain=roam.test; HttpOnly")
        return response

    return Starlette(routes=[Route("/moved", moved), Route("/set-cookie", cookie),
                             Route("/{path:path}", echo)])


def host_config(port: int, systems: Path, *,
                issuer: str = f"https://{GATEWAY_HOST}", **session: Any) -> Config:
    """The shipped config on an https issuer, as production runs it: keys in a directory
    (beside ``systems``), the identity source named, and the systems file checked again."""
    keys = systems.parent / "keys"
    if not keys.is_dir():
        for alg in ("RS256", "ES256"):  # the shipped clients sign with both
            generate_key_file(keys, alg)
    config = config_on_port(port)
    settings = config.settings
    return config.revised(settings=settings.model_copy(update={
        "gateway": settings.gateway.model_copy(update={"issuer": issuer,
                                                        "key_dir": str(keys)}),
        "session": settings.session.model_copy(update=session),
        "login": settings.login.model_copy(update={"source": "toml-directory",
                                                   "simulated_step_up": False}),
        "ops": settings.ops.model_copy(update={"operators_file": ""}),  # the demo's: loopback
        "routing": settings.routing.model_copy(update={"systems_file": str(systems)}),
        "proxy": settings.proxy.model_copy(update={"path_mode": False}),
    }))


def write_systems(tmp: Path, upstream_port: int, hosts: str = f'"{SYSTEM_HOST}"') -> Path:
    path = tmp / "systems.toml"
    path.write_text(SYSTEMS.format(port=upstream_port, secret=SECRET, hosts=hosts),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(legacy_system()) as upstream:
        systems = write_systems(tmp_path_factory.mktemp("hosts"), urlsplit(upstream).port or 0)
        port = free_port()
        with serve(create_app(host_config(port, systems)), port) as url:
            yield url


def on(host: str, **headers: str) -> dict[str, str]:
    return {"Host": host, **headers}


class Browser:
    """A browser's cookie jar and navigations over ``https://<host>/…`` URLs, every host
    served by the one gateway at ``base``. Cookies are kept per host, host-only (a
    ``Domain`` attribute is recorded, to be asserted on, never used to share)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar: dict[str, dict[str, str]] = {}
        self.attributes: dict[tuple[str, str], Morsel[str]] = {}
        self.url = ""

    def cookies(self, host: str) -> dict[str, str]:
        return self.jar.setdefault(host, {})

    def get(self, url: str, **headers: str) -> httpx.Response:
        parts = urlsplit(url)
        host = parts.hostname or ""
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies(host).items())
        sent = {"Host": host, "Accept": "text/html", **headers}
        if cookie:
            sent["Cookie"] = cookie
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        response = httpx.get(f"{self.base}{path}", headers=sent)
        for header in response.headers.get_list("set-cookie"):
            for name, morsel in SimpleCookie(header).items():
                self.attributes[(host, name)] = morsel
                if morsel["max-age"] == "0" or morsel["expires"].startswith("Thu, 01 Jan 1970"):
                    self.cookies(host).pop(name, None)
                else:
                    self.cookies(host)[name] = morsel.value
        return response

    def follow(self, url: str) -> httpx.Response:
        """``url`` and its redirects (a path stays on the host it came from) until an
        answer that is not a redirect; ``self.url`` is where it ended."""
        for _ in range(10):
            self.url = url
            response = self.get(url)
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = response.headers["location"]
            if location.startswith("/"):
                parts = urlsplit(url)
                location = f"{parts.scheme}://{parts.netloc}{location}"
            url = location
        raise AssertionError("too many redirects")

    def post_login(self, html: str) -> httpx.Response:
        """Submit the login page ``html`` (on the issuer) as the demo citizen."""
        return httpx.post(f"{self.base}/login", headers={
            "Host": GATEWAY_HOST, "Cookie": "; ".join(
                f"{k}={v}" for k, v in self.cookies(GATEWAY_HOST).items()),
        }, data={"csrf_token": form_field(html, "csrf_token"), "r": form_field(html, "r"),
                 "username": CITIZEN, "password": DEMO_PASSWORD})


def signed_in(gateway: str, path: str = "/apply?step=1",
              host: str = SYSTEM_HOST) -> tuple[Browser, httpx.Response]:
    """A browser that opened ``path`` on ``host``, logged in on the way, and came back:
    the browser and the system's answer."""
    browser = Browser(gateway)
    login = browser.follow(f"https://{host}{path}")
    assert browser.url.startswith(f"https://{GATEWAY_HOST}/login?"), browser.url
    done = browser.post_login(login.text)
    assert done.status_code == 303, done.text
    for header in done.headers.get_list("set-cookie"):
        for name, morsel in SimpleCookie(header).items():
            browser.attributes[(GATEWAY_HOST, name)] = morsel
            browser.cookies(GATEWAY_HOST)[name] = morsel.value
    back = done.headers["location"]
    return browser, browser.follow(f"https://{GATEWAY_HOST}{back}")


def hand_over_code(gateway: str) -> tuple[Browser, str, str]:
    """A signed-in browser that asks the issuer for a new code for ``gjj``: the browser,
    the callback URL (not yet visited) and the state cookie that goes with it."""
    browser, _ = signed_in(gateway)
    browser.cookies(SYSTEM_HOST).clear()
    first = browser.get(f"https://{SYSTEM_HOST}/page")
    callback = browser.get(first.headers["location"])
    assert callback.status_code == 303
    url = callback.headers["location"]
    assert url.startswith(f"https://{SYSTEM_HOST}/.roam/callback?code=")
    [(name, state)] = browser.cookies(SYSTEM_HOST).items()
    assert name.startswith("__Host-roam_state-")
    return browser, url, f"{name}={state}"


def test_a_hand_over_code_is_single_use_even_when_raced(gateway: str) -> None:
    _browser, url, state_cookie = hand_over_code(gateway)
    path = url.removeprefix(f"https://{SYSTEM_HOST}")

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway) as http:
            return await asyncio.gather(*(http.get(path, headers={
                "Host": SYSTEM_HOST, "Cookie": state_cookie})
                for _ in range(8)))

    answers = asyncio.run(race())
    made = [a for a in answers if a.status_code == 303]
    assert len(made) == 1, [a.status_code for a in answers]
    assert "__Host-roam_host=" in made[0].headers["set-cookie"]
    assert all(a.status_code == 400 and "登录已失效" in a.text
               for a in answers if a is not made[0])


def test_a_code_works_only_with_the_state_cookie_of_the_browser_that_asked(
        gateway: str) -> None:
    # An attacker's own code, sent to a victim, must not log the victim in as the attacker.
    _, url, state_cookie = hand_over_code(gateway)
    victim = Browser(gateway)  # with a state cookie of the right name, its own value
    victim.cookies(SYSTEM_HOST)[state_cookie.partition("=")[0]] = "x" * 32
    assert victim.get(url).status_code == 400
    assert "__Host-roam_host" not in victim.cookies(SYSTEM_HOST)
    fresh = Browser(gateway)  # no state cookie at all
    assert fresh.get(url).status_code == 400


def test_a_code_for_one_system_is_refused_on_another_systems_host(gateway: str) -> None:
    browser, url, state_cookie = hand_over_code(gateway)
    name, _, value = state_cookie.partition("=")
    browser.cookies(OTHER_HOST)[name] = value
    elsewhere = browser.get(url.replace(SYSTEM_HOST, OTHER_HOST, 1))
    assert elsewhere.status_code == 400
    assert "__Host-roam_host" not in browser.cookies(OTHER_HOST)
    assert browser.get(url).status_code == 303, "a wrong try does not use it up"


def test_a_host_session_works_only_for_its_own_system(gateway: str) -> None:
    browser, _ = signed_in(gateway)
    value = browser.cookies(SYSTEM_HOST)["__Host-roam_host"]
    stolen = httpx.get(f"{gateway}/x", headers={
        "Host": OTHER_HOST, "Accept": "application/json", "Cookie": f"__Host-roam_host={value}"})
    assert stolen.status_code == 401


@pytest.mark.parametrize("next_url", [
    "https://evil.test/phish",
    f"http://{SYSTEM_HOST}/",  # another scheme than the gateway's
    f"https://{SYSTEM_HOST}:8443/",  # another port
    f"https://user@{SYSTEM_HOST}/",
    f"https://{OTHER_HOST}/",  # another system's host
    f"https://{GATEWAY_HOST}/my/logins",
    "//evil.test/",
    "/local",
])
def test_the_hand_over_goes_only_to_a_host_of_the_system(gateway: str, next_url: str) -> None:
    browser, _ = signed_in(gateway)
    answer = browser.get(f"https://{GATEWAY_HOST}/sso/handover?" + urlencode(
        {"system": "gjj", "next": next_url, "state": "s" * 24}))
    assert answer.status_code == 400
    assert "请求无效" in answer.text


def test_the_hand_over_wants_a_state_and_a_known_system(gateway: str) -> None:
    browser, _ = signed_in(gateway)
    for query in ({"system": "gjj", "next": f"https://{SYSTEM_HOST}/", "state": "short"},
                  {"system": "gjj", "next": f"https://{SYSTEM_HOST}/"},
                  {"system": "nope", "next": f"https://{SYSTEM_HOST}/", "state": "s" * 24}):
        answer = browser.get(f"https://{GATEWAY_HOST}/sso/handover?" + urlencode(query))
        assert answer.status_code == 400


def test_logging_out_at_the_issuer_ends_every_host_session(gateway: str) -> None:
    browser, _ = signed_in(gateway)
    assert browser.follow(f"https://{OTHER_HOST}/x").status_code == 200
    page = browser.get(f"https://{GATEWAY_HOST}/my/logins")
    # 我的登录 lists the systems entered on their own hosts, which the logout ends too
    assert 'data-system="gjj">公积金（独立域名）' in page.text
    assert 'data-system="shebao">社保（独立域名）' in page.text
    csrf = form_field(page.text, "csrf_token")
    cookies = "; ".join(f"{k}={v}" for k, v in browser.cookies(GATEWAY_HOST).items())
    out = httpx.post(f"{gateway}/my/logins/logout", data={"csrf_token": csrf},
                     headers={"Host": GATEWAY_HOST, "Cookie": cookies})
    assert out.status_code in (200, 303), out.text
    for host in (SYSTEM_HOST, OTHER_HOST):
        again = browser.get(f"https://{host}/x")
        assert again.status_code == 303, "the host session died with the issuer's"
        assert "/sso/handover?" in again.headers["location"]


def test_the_hosts_own_logout_ends_its_session_and_goes_to_the_issuers(gateway: str) -> None:
    browser, _ = signed_in(gateway)
    out = browser.get(f"https://{SYSTEM_HOST}/.roam/logout")
    assert out.status_code == 303
    assert out.headers["location"] == f"https://{GATEWAY_HOST}/logout"
    assert "__Host-roam_host" not in browser.cookies(SYSTEM_HOST)


def test_programs_get_401_json_with_the_gateway_login(gateway: str) -> None:
    answer = httpx.get(f"{gateway}/api/list", headers=on(SYSTEM_HOST, Accept="application/json"))
    assert answer.status_code == 401
    assert answer.json()["error"] == "login_required"
    assert f"https://{GATEWAY_HOST}/login" in answer.json()["error_description"]


def test_a_sibling_sites_page_cannot_act_on_the_system_as_the_person(gateway: str) -> None:
    browser, _ = signed_in(gateway)
    value = browser.cookies(SYSTEM_HOST)["__Host-roam_host"]
    for method, mode in (("POST", "navigate"), ("GET", "cors"), ("GET", "no-cors")):
        answer = httpx.request(method, f"{gateway}/transfer", headers={
            "Host": SYSTEM_HOST, "Cookie": f"__Host-roam_host={value}",
            "Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": mode})
        assert answer.status_code == 403, (method, mode)
        if mode == "navigate":
            assert "其他网站或系统的页面不能以您的身份访问该系统" in answer.text
        else:
            assert answer.json()["error"] == "cross_site_request"
    link = httpx.get(f"{gateway}/transfer", headers={
        "Host": SYSTEM_HOST, "Cookie": f"__Host-roam_host={value}",
        "Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate",
        "Sec-Fetch-Dest": "document"})
    assert link.status_code == 200, "a link from a sibling is still followed"


def test_the_gateways_own_endpoints_do_not_answer_on_a_system_host(gateway: str) -> None:
    browser, _ = signed_in(gateway)
    for path in ("/.well-known/openid-configuration", "/token", "/s/gjj/x", "/sso/handover"):
        answer = browser.get(f"https://{SYSTEM_HOST}{path}", Accept="application/json")
        assert answer.status_code == 200
        assert answer.json()["path"] == path, "the system got it, not the gateway"
    own = httpx.get(f"{gateway}/.well-known/openid-configuration", headers=on(GATEWAY_HOST))
    assert own.json()["issuer"] == f"https://{GATEWAY_HOST}"


def test_a_system_with_a_host_is_never_served_on_the_issuers_origin(gateway: str) -> None:
    browser, _ = signed_in(gateway)
    answer = browser.get(f"https://{GATEWAY_HOST}/s/gjj/apply?step=1")
    assert answer.status_code == 308
    assert answer.headers["location"] == f"https://{SYSTEM_HOST}/apply?step=1"


def test_redirects_into_the_instance_stay_on_the_system_host(gateway: str) -> None:
    browser, _ = signed_in(gateway)
    answer = browser.get(f"https://{SYSTEM_HOST}/moved")
    assert answer.status_code == 302
    assert answer.headers["location"] == "/landing?x=1"


def test_a_systems_cookies_stay_on_its_own_host(gateway: str) -> None:
    browser, _ = signed_in(gateway)
    answer = browser.get(f"https://{SYSTEM_HOST}/set-cookie")
    assert answer.headers["set-cookie"] == "app=1; Path=/; HttpOnly", "no Domain: host-only"


def test_two_issuer_session_cookies_are_no_session(gateway: str) -> None:
    browser, _ = signed_in(gateway)
    session = browser.cookies(GATEWAY_HOST)["__Host-roam_session"]
    for cookie in (f"__Host-roam_session={session}; __Host-roam_session=planted.by-a-sibling",
                   f"__Host-roam_session=planted.by-a-sibling; __Host-roam_session={session}"):
        page = httpx.get(f"{gateway}/my/logins",
                         headers={"Host": GATEWAY_HOST, "Cookie": cookie})
        assert "您当前没有统一身份认证登录" in page.text, "two cookies: no session"
    alone = httpx.get(f"{gateway}/my/logins",
                      headers={"Host": GATEWAY_HOST, "Cookie": f"__Host-roam_session={session}"})
    assert "您当前没有统一身份认证登录" not in alone.text
    assert alone.status_code == 200


def test_login_returns_only_to_the_gateway(gateway: str) -> None:
    for next_url in ("https://evil.test/phish", f"https://{SYSTEM_HOST}/", "//evil.test/"):
        page = httpx.get(f"{gateway}/login", params={"next": next_url},
                         headers=on(GATEWAY_HOST))
        assert page.status_code == 400
        assert "跳转地址无效" in page.text


def test_host_name() -> None:
    assert host_name("GJJ.Roam.Test:8443") == "gjj.roam.test"


# -- configuration -------------------------------------------------------------------------


def test_hosts_on_unrelated_domains_need_no_cookie_domain(tmp_path: Path) -> None:
    systems = write_systems(tmp_path, 9, hosts='"gjj.roam.test", "gjj.elsewhere.test"')
    config = host_config(9, systems)
    assert config.systems.get("gjj") is not None


def test_a_host_within_the_cookie_domain_is_refused(tmp_path: Path) -> None:
    systems = write_systems(tmp_path, 9)
    with pytest.raises(ConfigError) as caught:
        host_config(9, systems, cookie_domain="roam.test")
    assert ("system[0].hosts: 'gjj.roam.test' is within [session] cookie_domain 'roam.test'"
            in str(caught.value))


def test_a_host_is_not_the_gateways_own(tmp_path: Path) -> None:
    systems = write_systems(tmp_path, 9, hosts=f'"{GATEWAY_HOST}"')
    with pytest.raises(ConfigError) as caught:
        host_config(9, systems)
    assert "is the gateway's own host" in str(caught.value)


def test_the_gateways_cookies_on_a_system_host_never_reach_the_system(gateway: str) -> None:
    browser, _ = signed_in(gateway)
    browser.cookies(SYSTEM_HOST)["__Host-roam_state-abcdefgh"] = "s" * 32  # a hop under way
    browser.cookies(SYSTEM_HOST)["app"] = "1"
    seen = browser.get(f"https://{SYSTEM_HOST}/x", Accept="application/json").json()
    assert seen["headers"]["cookie"] == "app=1"


def test_forwarded_host_is_the_systems_own_never_what_the_client_sent(gateway: str) -> None:
    browser, _ = signed_in(gateway)
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies(SYSTEM_HOST).items())
    seen = httpx.get(f"{gateway}/page", headers={
        "Host": "GJJ.roam.test:9999", "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "http", "X-Forwarded-For": "10.9.9.9", "Cookie": cookie,
        "Accept": "application/json"}).json()
    assert seen["path"] == "/page"
    headers = seen["headers"]
    assert headers["x-forwarded-host"] == SYSTEM_HOST  # the issuer's port: none (https)
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert "x-forwarded-prefix" not in headers


@pytest.mark.parametrize(("path", "target"), [
    ("/s/gjj%2F@evil.test/x", f"https://{SYSTEM_HOST}/%40evil.test/x"),
    ("/s/gjj%2f%2F@evil.test", f"https://{SYSTEM_HOST}/%40evil.test"),
    ("/s/gjj//evil.test/x?y=1", f"https://{SYSTEM_HOST}/evil.test/x?y=1"),
    ("/s/gjj/a%2F..%2Fb", f"https://{SYSTEM_HOST}/a%2F..%2Fb"),
])
def test_the_way_to_a_systems_host_never_leaves_it(gateway: str, path: str,
                                                    target: str) -> None:
    """/s/<id>%2F@evil once became https://<host>%2F@evil/, which browsers read as user
    info and a host of the attacker's."""
    answer = httpx.get(f"{gateway}{path}", headers=on(GATEWAY_HOST))
    assert answer.status_code == 308
    location = answer.headers["location"]
    assert location == target
    assert urlsplit(location).hostname == SYSTEM_HOST


def test_a_sibling_cannot_frame_a_system_even_by_navigating_the_frame(gateway: str) -> None:
    browser, _ = signed_in(gateway)
    value = browser.cookies(SYSTEM_HOST)["__Host-roam_host"]
    for dest in ("iframe", "frame", "embed", "object", ""):
        framed = httpx.get(f"{gateway}/page", headers={
            "Host": SYSTEM_HOST, "Cookie": f"__Host-roam_host={value}",
            "Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate",
            "Sec-Fetch-Dest": dest})
        assert framed.status_code == 403, dest
    # nor start the hop in a frame, and no answer of the hop may be framed
    bare = Browser(gateway)
    started = bare.get(f"https://{SYSTEM_HOST}/page", **{
        "Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"})
    assert started.status_code == 403
    begun = Browser(gateway).get(f"https://{SYSTEM_HOST}/page")
    assert begun.status_code == 303
    assert begun.headers["x-frame-options"] == "DENY"
    assert begun.headers["content-security-policy"] == "frame-ancestors 'none'"
