"""The demo RP and the demo runner without a browser: config moves, pages, error codes."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.config import Config, load_config
from gateway.demo import DEMO_SECRETS
from gateway.demo.rp import create_rp_app
from gateway.demo.run import demo_banner, demo_config, demo_rp_apps, run_demo
from tests.support.gateway import CITIZEN, DEMO_PASSWORD, REPO, form_field
from tests.support.servers import free_port, serve


@pytest.fixture(scope="module")
def shipped() -> Config:
    return load_config(REPO / "config" / "roam.toml", env={})


def _ports(*names: str) -> dict[str, int]:
    return {name: free_port() for name in names}


# --- demo_config ---------------------------------------------------------------------


def test_demo_config_moves_issuer_and_demo_clients(shipped: Config) -> None:
    moved = demo_config(shipped, gateway_port=18000,
                        rp_ports={"changsha-gov": 18001, "yueyang-gov": 18002})
    assert moved.issuer == "http://127.0.0.1:18000"
    assert moved.settings.gateway.port == 18000
    changsha, yueyang = moved.client("changsha-gov"), moved.client("yueyang-gov")
    assert changsha is not None
    assert yueyang is not None
    assert changsha.redirect_uris == ("http://127.0.0.1:18001/callback",)
    assert changsha.post_logout_redirect_uris == ("http://127.0.0.1:18001/",)
    assert yueyang.redirect_uris == ("http://127.0.0.1:18002/callback",)
    assert yueyang.post_logout_redirect_uris == ("http://127.0.0.1:18002/",)
    # Everything else is as shipped: other clients, other client fields, other settings.
    assert moved.client("hunan-miniapp") == shipped.client("hunan-miniapp")
    original = shipped.client("changsha-gov")
    assert original is not None
    assert changsha.model_copy(update={
        "redirect_uris": original.redirect_uris,
        "post_logout_redirect_uris": original.post_logout_redirect_uris,
    }) == original
    assert moved.settings.session == shipped.settings.session
    assert moved.base_dir == shipped.base_dir
    # The input is not changed (the models are frozen; the copy is a new object).
    assert shipped.issuer == "http://127.0.0.1:8000"
    assert shipped.client("changsha-gov") == original


def test_demo_config_moves_only_the_named_clients(shipped: Config) -> None:
    moved = demo_config(shipped, gateway_port=18100, rp_ports={"yueyang-gov": 18102})
    assert moved.client("changsha-gov") == shipped.client("changsha-gov")
    yueyang = moved.client("yueyang-gov")
    assert yueyang is not None
    assert yueyang.redirect_uris == ("http://127.0.0.1:18102/callback",)


def test_demo_config_refuses_unknown_clients(shipped: Config) -> None:
    with pytest.raises(ValueError, match="nanjing-gov"):
        demo_config(shipped, gateway_port=18000, rp_ports={"nanjing-gov": 18001})


# --- the RP app on its own -----------------------------------------------------------


async def _get(app: Starlette, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8001") as c:
        return await c.get(path)


async def test_home_page_says_not_logged_in() -> None:
    app = create_rp_app(
        title="长沙市政务服务", issuer="http://127.0.0.1:9", client_id="changsha-gov",
        client_secret=DEMO_SECRETS["changsha-gov"], base_url="http://127.0.0.1:8001",
        token_endpoint_auth_method="client_secret_basic")
    response = await _get(app, "/")
    assert response.status_code == 200
    assert "长沙市政务服务" in response.text
    assert '<p id="status">未登录</p>' in response.text
    assert '<a class="button" id="login" href="/login">登录</a>' in response.text
    assert response.headers["cache-control"] == "no-store"


async def test_login_with_gateway_down_shows_chinese_error() -> None:
    dead = free_port()  # nothing listens here
    app = create_rp_app(
        title="岳阳市政务服务", issuer=f"http://127.0.0.1:{dead}", client_id="yueyang-gov",
        client_secret=DEMO_SECRETS["yueyang-gov"], base_url="http://127.0.0.1:8002",
        token_endpoint_auth_method="client_secret_post")
    response = await _get(app, "/login")
    assert response.status_code == 502
    assert "统一身份认证平台暂时无法访问" in response.text
    assert 'id="error-code">temporarily_unavailable<' in response.text


# --- the RP against a real gateway ---------------------------------------------------


@dataclass(frozen=True)
class Stack:
    gateway: str
    rp_a: str
    rp_b: str


@pytest.fixture(scope="module")
def stack(shipped: Config) -> Iterator[Stack]:
    gateway_port = free_port()
    ports = _ports("changsha-gov", "yueyang-gov")
    config = demo_config(shipped, gateway_port=gateway_port, rp_ports=ports)
    rps = demo_rp_apps(config)
    with (serve(create_app(config), gateway_port) as gateway,
          serve(rps["changsha-gov"][1], ports["changsha-gov"]) as rp_a,
          serve(rps["yueyang-gov"][1], ports["yueyang-gov"]) as rp_b):
        yield Stack(gateway, rp_a, rp_b)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """One cookie jar for the RPs and the gateway, like one browser."""
    with httpx.Client(follow_redirects=True, timeout=10) as client:
        yield client


def _error_code(html: str) -> str:
    match = re.search(r'id="error-code">([^<]*)<', html)
    assert match, html
    return match.group(1)


def test_full_login_through_authlib_client(stack: Stack, http: httpx.Client) -> None:
    login_page = http.get(f"{stack.rp_a}/login")
    assert login_page.url.path == "/login"
    assert str(login_page.url).startswith(stack.gateway)
    home = http.post(f"{stack.gateway}/login", data={
        "csrf_token": form_field(login_page.text, "csrf_token"),
        "r": form_field(login_page.text, "r"),
        "username": CITIZEN,
        "password": DEMO_PASSWORD,
    })
    assert str(home.url) == f"{stack.rp_a}/"
    assert '<dd id="who">张*</dd>' in home.text
    assert '<span id="acr">L2</span>' in home.text
    assert '<dd id="amr">pwd</dd>' in home.text
    assert '<dd id="region">430102</dd>' in home.text
    assert "张三" not in home.text
    # The RP's own cookie is named after the client, so the other RP's is untouched.
    assert http.cookies.get("rp_changsha-gov")
    assert not http.cookies.get("rp_yueyang-gov")
    # Logout clears the RP's session only.
    assert "未登录" in http.post(f"{stack.rp_a}/logout").text


def test_prompt_none_without_session_shows_login_required(stack: Stack,
                                                          http: httpx.Client) -> None:
    page = http.get(f"{stack.rp_b}/login", params={"prompt": "none"})
    assert str(page.url).startswith(f"{stack.rp_b}/callback?")
    assert page.status_code == 400
    assert _error_code(page.text) == "login_required"
    assert "没有登录会话" in page.text


def test_callback_without_a_flow_is_refused(stack: Stack, http: httpx.Client) -> None:
    page = http.get(f"{stack.rp_a}/callback",
                    params={"code": "forged", "state": "forged", "iss": stack.gateway})
    assert _error_code(page.text) == "mismatching_state"
    assert "重新登录" in page.text


def test_callback_from_another_issuer_is_refused(stack: Stack, http: httpx.Client) -> None:
    http.get(f"{stack.rp_a}/")  # discovery is loaded lazily; /callback loads it itself
    page = http.get(f"{stack.rp_a}/callback",
                    params={"code": "x", "state": "y", "iss": "http://127.0.0.1:1"})
    assert _error_code(page.text) == "invalid_issuer"


# --- run_demo ------------------------------------------------------------------------


def test_banner_names_urls_accounts_and_password(shipped: Config) -> None:
    text = demo_banner(shipped)
    for expected in (
        "http://127.0.0.1:8001/", "http://127.0.0.1:8002/",
        "http://127.0.0.1:8000/.well-known/openid-configuration",
        "长沙市政务服务", "岳阳市政务服务",
        "15000000003  L1", "13800000001  L2", "13900000002  L3", "Roam@2026",
        "no second login", "无需再次登录",
    ):
        assert expected in text, expected
    assert "430102199001010016" not in text  # ID numbers are never printed
    assert "张三" not in text


async def test_run_demo_serves_all_three_and_stops(shipped: Config,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    ports = _ports("changsha-gov", "yueyang-gov")
    config = demo_config(shipped, gateway_port=free_port(), rp_ports=ports)
    stop = anyio.Event()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_demo(config, stop=stop))
            async with httpx.AsyncClient(timeout=2) as client:
                urls = [f"{config.issuer}/.well-known/openid-configuration",
                        *(f"http://127.0.0.1:{p}/" for p in ports.values())]
                for url in urls:
                    while True:
                        try:
                            response = await client.get(url)
                            break
                        except httpx.TransportError:
                            await anyio.sleep(0.05)
                    assert response.status_code == 200, url
            stop.set()
    assert f"{config.issuer}/.well-known/openid-configuration" in capsys.readouterr().out


async def test_run_demo_stops_everything_when_a_port_is_taken(shipped: Config) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = _ports("changsha-gov")
        ports["yueyang-gov"] = taken.getsockname()[1]
        config = demo_config(shipped, gateway_port=free_port(), rp_ports=ports)
        with anyio.fail_after(20), pytest.raises(SystemExit):
            await run_demo(config)
