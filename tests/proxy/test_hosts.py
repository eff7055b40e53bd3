"""A system served on a host name of its own, through the real app (gateway/proxy/hosts.py).

The gateway's issuer is ``https://sso.roam.test`` with ``[session] cookie_domain =
"roam.test"``; the system ``gjj`` is served on ``gjj.roam.test``. Both are reached on a
loopback port with the ``Host`` header a browser would send, as behind a proxy ending TLS.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

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
from gateway.proxy.hosts import host_name
from tests.support.gateway import CITIZEN, DEMO_PASSWORD, config_on_port, form_field
from tests.support.servers import free_port, serve

SECRET = "host-routing-test-secret-0123456789abcdef"
SYSTEM_HOST = "gjj.roam.test"
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

    return Starlette(routes=[Route("/moved", moved), Route("/{path:path}", echo)])


def host_config(port: int, systems: Path, *, cookie_domain: str | None = "roam.test",
                issuer: str = f"https://{GATEWAY_HOST}") -> Config:
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
        "session": settings.session.model_copy(update={"cookie_domain": cookie_domain}),
        "login": settings.login.model_copy(update={"source": "toml-directory",
                                                   "simulated_step_up": False}),
        "routing": settings.routing.model_copy(update={"systems_file": str(systems)}),
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


def log_in_for(gateway: str, next_url: str) -> tuple[str, str]:
    """The login page, as a browser sent there would use it: (Set-Cookie, Location).

    Cookies go by hand: they are ``Secure`` (the issuer is https) and this is plain http.
    """
    with httpx.Client(base_url=gateway, headers={"Host": GATEWAY_HOST}) as browser:
        parked = browser.get("/login", params={"next": next_url})
        assert parked.status_code == 303, parked.text  # the deep link is parked first
        page = browser.get(parked.headers["location"])
        assert page.status_code == 200, page.text
        csrf = SimpleCookie(page.headers["set-cookie"])["roam_csrf"].value
        done = browser.post("/login", headers={"Cookie": f"roam_csrf={csrf}"}, data={
            "csrf_token": form_field(page.text, "csrf_token"), "r": form_field(page.text, "r"),
            "username": CITIZEN, "password": DEMO_PASSWORD})
        assert done.status_code == 303, done.text
        return done.headers["set-cookie"], done.headers["location"]


def test_a_navigation_without_session_goes_to_the_gateway_login_and_back(gateway: str) -> None:
    first = httpx.get(f"{gateway}/apply?step=1", headers=on(SYSTEM_HOST, Accept="text/html"))
    assert first.status_code == 303
    login = urlsplit(first.headers["location"])
    assert (login.scheme, login.netloc, login.path) == ("https", GATEWAY_HOST, "/login")
    next_url = parse_qs(login.query)["next"][0]
    assert next_url == f"https://{SYSTEM_HOST}/apply?step=1"

    set_cookie, back = log_in_for(gateway, next_url)
    assert back == next_url, "the deep link survives the login"
    cookie = SimpleCookie(set_cookie)["roam_session"]
    assert cookie["domain"] == "roam.test", "the session cookie must reach the system's host"
    assert cookie["secure"]

    page = httpx.get(f"{gateway}/apply?step=1",
                     headers=on(SYSTEM_HOST, Cookie=f"roam_session={cookie.value}"))
    assert page.status_code == 200
    seen = page.json()
    assert seen["path"] == "/apply?step=1", "no /s/<system> prefix on a host of its own"
    assert seen["sub"] == "c-0001"
    assert seen["headers"]["x-forwarded-host"] == SYSTEM_HOST
    assert "x-forwarded-prefix" not in seen["headers"]
    assert "roam_session" not in seen["headers"].get("cookie", "")


def test_programs_get_401_json_with_the_gateway_login(gateway: str) -> None:
    answer = httpx.get(f"{gateway}/api/list", headers=on(SYSTEM_HOST, Accept="application/json"))
    assert answer.status_code == 401
    assert answer.json()["error"] == "login_required"
    assert f"https://{GATEWAY_HOST}/login" in answer.json()["error_description"]


def test_the_gateways_own_endpoints_do_not_answer_on_a_system_host(gateway: str) -> None:
    set_cookie, _ = log_in_for(gateway, f"https://{SYSTEM_HOST}/")
    cookie = SimpleCookie(set_cookie)["roam_session"].value
    for path in ("/.well-known/openid-configuration", "/token", "/s/gjj/x"):
        answer = httpx.get(f"{gateway}{path}",
                           headers=on(SYSTEM_HOST, Cookie=f"roam_session={cookie}"))
        assert answer.status_code == 200
        assert answer.json()["path"] == path, "the system got it, not the gateway"
    own = httpx.get(f"{gateway}/.well-known/openid-configuration", headers=on(GATEWAY_HOST))
    assert own.json()["issuer"] == f"https://{GATEWAY_HOST}"


def test_redirects_into_the_instance_stay_on_the_system_host(gateway: str) -> None:
    set_cookie, _ = log_in_for(gateway, f"https://{SYSTEM_HOST}/")
    cookie = SimpleCookie(set_cookie)["roam_session"].value
    answer = httpx.get(f"{gateway}/moved",
                       headers=on(SYSTEM_HOST, Cookie=f"roam_session={cookie}"))
    assert answer.status_code == 302
    assert answer.headers["location"] == "/landing?x=1"


@pytest.mark.parametrize("next_url", [
    "https://evil.test/phish",
    f"http://{SYSTEM_HOST}/",  # another scheme than the gateway's
    f"https://{SYSTEM_HOST}:8443/",  # another port
    f"https://user@{SYSTEM_HOST}/",
    "//evil.test/",
])
def test_login_returns_only_to_the_gateway_or_a_system_host(gateway: str,
                                                            next_url: str) -> None:
    page = httpx.get(f"{gateway}/login", params={"next": next_url}, headers=on(GATEWAY_HOST))
    assert page.status_code == 400
    assert "跳转地址无效" in page.text


def test_host_name() -> None:
    assert host_name("GJJ.Roam.Test:8443") == "gjj.roam.test"
    assert host_name("gjj.roam.test") == "gjj.roam.test"
    assert host_name("[::1]:8000") == "[::1]"


# -- configuration -------------------------------------------------------------------------


def test_hosts_need_a_cookie_domain_covering_them(tmp_path: Path) -> None:
    systems = write_systems(tmp_path, 9, hosts='"gjj.roam.test", "gjj.elsewhere.test"')
    with pytest.raises(ConfigError) as missing:
        host_config(9, systems, cookie_domain=None)
    assert "needs [session] cookie_domain" in str(missing.value)
    with pytest.raises(ConfigError) as outside:
        host_config(9, systems)
    problems = str(outside.value)
    assert "system[0].hosts: 'gjj.elsewhere.test' is not within [session] cookie_domain" \
        in problems
    assert "gjj.roam.test" not in problems


def test_a_host_is_not_the_gateways_own(tmp_path: Path) -> None:
    systems = write_systems(tmp_path, 9, hosts=f'"{GATEWAY_HOST}"')
    with pytest.raises(ConfigError) as caught:
        host_config(9, systems)
    assert "is the gateway's own host" in str(caught.value)
