"""/go/{item}: precise arrival through login, to the right system, or a helpful page."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.app import create_app
from gateway.store.memory import MemoryStore
from gateway.wiring import Gateway
from tests.support.gateway import (
    CITIZEN,
    DEMO_PASSWORD,
    config_on_port,
    form_field,
    with_systems,
)
from tests.support.servers import free_port, serve

GJJ, SB, BDC = "430000-GJJ-001", "430000-SB-001", "430000-BDC-001"


@pytest.fixture(scope="module")
def gw() -> Iterator[str]:
    port = free_port()
    with serve(create_app(config_on_port(port), store=MemoryStore()), port) as url:
        yield url


@pytest.fixture
def browser(gw: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw, follow_redirects=False) as client:
        yield client


def log_in_via(browser: httpx.Client, response: httpx.Response) -> httpx.Response:
    """Follow /go → /login?next → the login page, log in; the response after the form."""
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")
    page = browser.get(browser.get(response.headers["location"]).headers["location"])
    return browser.post("/login", data={
        "csrf_token": form_field(page.text, "csrf_token"), "r": form_field(page.text, "r"),
        "username": CITIZEN, "password": DEMO_PASSWORD})


def test_deep_link_survives_login_and_arrives(browser: httpx.Client) -> None:
    link = f"/go/{SB}?region=430602"  # 岳阳楼区 → no county system → 岳阳市
    back = log_in_via(browser, browser.get(link))
    assert back.headers["location"] == link
    arrived = browser.get(link)
    assert arrived.status_code == 303
    assert arrived.headers["location"] == "http://127.0.0.1:8002/login"


def test_region_defaults_to_the_persons_own(browser: httpx.Client) -> None:
    log_in_via(browser, browser.get(f"/go/{SB}"))
    # 张三 lives in 430102 (长沙市芙蓉区): 长沙市's system handles 社保 for it
    assert browser.get(f"/go/{SB}").headers["location"] == "http://127.0.0.1:8001/login"


def test_county_system_first_then_province(browser: httpx.Client) -> None:
    log_in_via(browser, browser.get(f"/go/{BDC}"))
    # 岳麓区's own system is a CAS one: the gateway's CAS login issues its ticket
    cas = browser.get(f"/go/{BDC}?region=430104").headers["location"]
    assert cas.endswith("/cas/login?service=http%3A%2F%2F127.0.0.1%3A8011%2F")
    # the province's proxied system, on a host of its own (the issuer's port)
    port = str(browser.base_url.port)
    assert browser.get(f"/go/{BDC}?region=430702").headers["location"] == \
        f"http://hunan-province.localhost:{port}/"


def test_unknown_item_and_region_get_a_page_listing_what_exists(browser: httpx.Client) -> None:
    log_in_via(browser, browser.get(f"/go/{SB}"))
    page = browser.get("/go/430000-GJJ-999")
    assert page.status_code == 404
    assert "未找到该事项" in page.text
    assert "住房公积金提取" in page.text
    assert 'id="ref"' in page.text
    page = browser.get(f"/go/{SB}?region=439999")
    assert page.status_code == 404
    assert "未找到该地区" in page.text
    assert "/go/430000-SB-001?region=43" in page.text


def test_go_through_login_and_the_proxy_to_a_legacy_system(tmp_path: Path) -> None:
    """/go → login → back → /s/<system>/ → the connector's identity reaches the upstream."""

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"path": request.url.path,
                             "authorization": request.headers.get("authorization", "")})

    upstream = Starlette(routes=[Route("/{rest:path}", echo)])
    with serve(upstream) as upstream_url:
        (tmp_path / "systems.toml").write_text(f"""
[[item]]
code = "{BDC}"
name = "不动产登记查询"

[[system]]
id = "legacy-bdc"
name = "旧系统"
region = "430000"
level = "province"
instances = ["{upstream_url}"]
connector = "jwt-assertion"
connector_settings = {{ claim_map = {{ name = "xm" }} }}
items = ["{BDC}"]
claims = ["name"]
""", "utf-8")
        port = free_port()
        config = with_systems(config_on_port(port), tmp_path / "systems.toml", path_mode=True)
        with serve(create_app(config, store=MemoryStore()), port) as gw, \
                httpx.Client(base_url=gw) as browser:
            back = log_in_via(browser, browser.get(f"/go/{BDC}?region=430702"))
            arrived = browser.get(back.headers["location"])
            assert arrived.headers["location"] == "/s/legacy-bdc/"
            seen = browser.get("/s/legacy-bdc/records?id=7").json()
            assert seen["path"] == "/records"
            token = seen["authorization"].removeprefix("Bearer ")
            keys = KeySet.import_key_set(httpx.get(f"{gw}/jwks").json())
            claims = jwt.decode(token, keys).claims
            assert claims["aud"] == "legacy-bdc"
            assert claims["sub"] == "c-0001"
            assert claims["xm"] == "张三"


def test_items_page_links_every_item_for_the_chosen_region(browser: httpx.Client) -> None:
    page = browser.get("/items", params={"region": "430104"})
    assert page.status_code == 200
    assert "岳麓区" in page.text
    for code in (GJJ, SB, BDC):
        assert f'href="/go/{code}?region=430104"' in page.text
    unknown = browser.get("/items", params={"region": "439999"})
    assert f'href="/go/{BDC}"' in unknown.text  # an unknown region is not passed on


def test_the_gateway_home_is_the_items_page(browser: httpx.Client) -> None:
    response = browser.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/items"


def test_below_the_systems_level_go_steps_up_first_and_comes_back(
        browser: httpx.Client) -> None:
    """/go passes the same gate as the proxy, CAS and tickets: 湘潭's housing fund needs
    L3, so an L2 session is sent to step-up with the link to come back to, not on to the
    system (before the gate, /go checked no level at all)."""
    link = f"/go/{GJJ}?region=430302"
    log_in_via(browser, browser.get(link))  # 张三, L2
    stepped = browser.get(link)
    assert stepped.status_code == 303
    assert stepped.headers["location"] == (
        "/stepup?next=%2Fgo%2F430000-GJJ-001%3Fregion%3D430302&acr=L3")
    page = browser.get(browser.get(stepped.headers["location"]).headers["location"])
    assert page.status_code == 200
    assert 'id="face-start"' in page.text  # the missing factor, not an error page


def test_a_proxied_system_below_its_level_reaches_the_step_up_for_that_level(
        browser: httpx.Client) -> None:
    """The step-up on the way into a proxied system names the level (it once left ``acr``
    out, and the step-up page could only answer with an error). An account verified only
    to L1 cannot be raised to L2 by any factor, and the page says exactly that."""
    login = browser.get("/go/430000-BDC-001?region=430702")  # the province's L2 system
    page = browser.get(browser.get(login.headers["location"]).headers["location"])
    browser.post("/login", data={
        "csrf_token": form_field(page.text, "csrf_token"), "r": form_field(page.text, "r"),
        "username": "15000000003", "password": DEMO_PASSWORD})  # c-0003, verified L1
    host = f"hunan-province.localhost:{browser.base_url.port}"
    proxied = browser.get("/a?b=1", headers={"Accept": "text/html", "Host": host})
    assert proxied.status_code == 303  # to the issuer for a session on the system's host
    handover = proxied.headers["location"]
    assert handover.startswith(f"{browser.base_url}/sso/handover?")
    stepped = browser.get(handover)
    assert stepped.status_code == 303
    step_up = stepped.headers["location"]
    assert step_up.startswith("/stepup?next=%2Fsso%2Fhandover%3F")
    assert step_up.endswith("&acr=L2")
    page = browser.get(browser.get(step_up).headers["location"])
    assert page.status_code == 403
    assert "该业务需要 L2 实名认证，您的账户目前核验到 L1 账户认证" in page.text


@pytest.fixture
def fresh() -> Iterator[tuple[str, Gateway]]:
    """A gateway of its own (the test changes its instances' health), and its parts."""
    port = free_port()
    app = create_app(config_on_port(port), store=MemoryStore())
    with serve(app, port) as url:
        yield url, app.state.gateway


def test_a_drained_county_system_falls_back_with_a_notice(
        fresh: tuple[str, Gateway]) -> None:
    url, gateway = fresh
    asyncio.run(gateway.health.shared.drain("yuelu-bdc", "1", by="cli:ops"))
    with httpx.Client(base_url=url) as browser:
        log_in_via(browser, browser.get(f"/go/{BDC}?region=430104"))
        page = browser.get(f"/go/{BDC}?region=430104")
        assert page.status_code == 200  # not a silent redirect: a page says why, and where
        assert "长沙市岳麓区不动产登记（演示，旧系统）正在维护。" in page.text
        assert "已为您转到长沙市的“长沙市政务服务（演示）”办理“不动产登记查询”。" in page.text
        assert 'href="http://127.0.0.1:8001/login"' in page.text
        assert 'content="5;url=http://127.0.0.1:8001/login"' in page.text
        # the county's CAS login itself: on through /go, which says the same
        cas = browser.get("/cas/login", params={"service": "http://127.0.0.1:8011/"})
        assert cas.status_code == 303
        assert cas.headers["location"] == f"{url}/go/{BDC}?region=430104"
        # an ordinary fallback (芙蓉区 has no system of its own) needs no word
        assert browser.get(f"/go/{BDC}?region=430102").status_code == 303


def test_with_every_level_out_the_page_says_so(fresh: tuple[str, Gateway]) -> None:
    url, gateway = fresh
    for system in ("yuelu-bdc", "changsha-zwfw", "hunan-province"):
        asyncio.run(gateway.health.shared.drain(system, "1", by="cli:ops"))
    with httpx.Client(base_url=url) as browser:
        log_in_via(browser, browser.get(f"/go/{BDC}?region=430104"))
        page = browser.get(f"/go/{BDC}?region=430104")
    assert page.status_code == 404
    assert "暂无办理系统" in page.text
    assert ("长沙市岳麓区不动产登记（演示，旧系统）正在维护；长沙市政务服务（演示）正在维护；"
            "湖南省政务服务平台（演示）正在维护，暂时没有其他可以办理该事项的系统。") in page.text
