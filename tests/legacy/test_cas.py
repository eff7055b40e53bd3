"""The gateway as a CAS 3.0 server, driven by a real CAS client app over real HTTP.

The client behaves like a Java CAS client: it sends the browser to ``/cas/login``, then
validates the ticket server-to-server at ``/cas/p3/serviceValidate`` and parses the XML.
"""

from __future__ import annotations

import contextlib
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from connectors.base import ConnectorContext
from connectors.base import Route as SystemRoute
from connectors.cas import CasConfig, service_allowed
from gateway.config import ServiceItem, SessionSection, SystemConfig, Systems
from gateway.identity import Identity, PersonKind
from gateway.keys import KeyRing
from gateway.legacy.access import Gate
from gateway.legacy.cas import CasServer
from gateway.pages import Pages
from gateway.sessions import SessionManager
from gateway.store.base import Kind
from gateway.store.memory import MemoryStore
from gateway.wiring import open_connectors
from tests.support.servers import free_port, serve

ITEM = "430000-GJJ-001"
NS = {"cas": "http://www.yale.edu/tp/cas"}
ID_NUMBER = "430102199001011234"
PHONE = "13812341234"


class Clock:
    """The store's clock, which a test may move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def cas_system(sid: str, services: list[str], *, min_acr: str = "L1",
               privileged: bool = False) -> SystemConfig:
    return SystemConfig.model_validate({
        "id": sid, "name": f"测试系统 {sid}", "region": "430100", "level": "prefecture",
        "instances": ["http://127.0.0.1:9"], "connector": "cas",
        "connector_settings": {"services": services}, "items": [ITEM], "min_acr": min_acr,
        "claims": ["name", "phone_number", "id_number"], "privileged": privileged,
    })


def gateway_app(systems: Systems, store: MemoryStore) -> Starlette:
    sessions = SessionManager(store, SessionSection(), issuer="http://127.0.0.1:8000")
    context = ConnectorContext(keys=KeyRing.ephemeral(), issuer="http://127.0.0.1:8000")
    cas = CasServer(systems=systems, connectors=open_connectors(systems, context),
                    gate=Gate(sessions), store=store, pages=Pages())

    async def login(request: Request) -> Response:
        """Test-only: start a session at the level asked for."""
        identity = Identity(subject="c-0001", kind=PersonKind.NATURAL,
                            acr=request.query_params.get("acr", "L2"), amr=("pwd",),
                            auth_time=int(time.time()), region="430102",
                            claims={"name": request.query_params.get("name", "张三"),
                                    "phone_number": PHONE, "id_number": ID_NUMBER,
                                    "birthdate": "1990-01-01"})
        response = Response("ok")
        await sessions.start(identity, response)
        return response

    return Starlette(routes=[
        Route("/test/login", login, methods=["GET"]),
        Route("/cas/login", cas.login, methods=["GET"]),
        Route("/cas/serviceValidate", cas.service_validate, methods=["GET"]),
        Route("/cas/p3/serviceValidate", cas.p3_service_validate, methods=["GET"]),
        Route("/cas/logout", cas.logout, methods=["GET"]),
    ])


def cas_client_app(base: str, gateway: str) -> Starlette:
    """A legacy system with a CAS client, as a Java CAS filter would behave."""

    async def protected(request: Request) -> Response:
        service = base + request.url.path
        ticket = request.query_params.get("ticket")
        if ticket is None:
            return RedirectResponse(f"{gateway}/cas/login?service={quote(service, safe='')}",
                                    status_code=302)
        validate_as = request.query_params.get("as", service)
        async with httpx.AsyncClient(timeout=10) as http:
            reply = await http.get(f"{gateway}/cas/p3/serviceValidate",
                                   params={"service": validate_as, "ticket": ticket})
        return JSONResponse(parse_cas(reply.text))

    return Starlette(routes=[Route("/app/{rest:path}", protected, methods=["GET"])])


def parse_cas(text: str) -> dict[str, Any]:
    root = ET.fromstring(text)  # noqa: S314 - the brief's client; our own gateway's reply
    assert root.tag == "{http://www.yale.edu/tp/cas}serviceResponse"
    failure = root.find("cas:authenticationFailure", NS)
    if failure is not None:
        return {"failure": failure.get("code")}
    success = root.find("cas:authenticationSuccess", NS)
    assert success is not None
    user = success.find("cas:user", NS)
    assert user is not None
    attrs = success.find("cas:attributes", NS)
    attributes = None if attrs is None else {
        child.tag.split("}")[1]: child.text for child in attrs}
    return {"user": user.text, "attributes": attributes}


@dataclass
class Env:
    gateway: str
    client: str
    store: MemoryStore
    clock: Clock


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    client_port = free_port()
    client = f"http://127.0.0.1:{client_port}"
    clock = Clock()
    store = MemoryStore(clock=clock)
    systems = Systems([
        cas_system("legacy-cas", [f"{client}/app/plain"]),
        cas_system("legacy-priv", [f"{client}/app/priv"], privileged=True),
        cas_system("legacy-strict", [f"{client}/app/strict"], min_acr="L3"),
    ], [ServiceItem(code=ITEM, name="住房公积金提取")])
    with serve(gateway_app(systems, store)) as gateway, \
            serve(cas_client_app(client, gateway), port=client_port):
        yield Env(gateway, client, store, clock)


@contextlib.contextmanager
def browser(env: Env, *, acr: str | None = "L2", name: str = "张三") -> Iterator[httpx.Client]:
    """A browser-like client, logged in at ``acr`` (not logged in when None)."""
    with httpx.Client(timeout=30, follow_redirects=False) as http:
        if acr is not None:
            response = http.get(f"{env.gateway}/test/login", params={"acr": acr, "name": name})
            assert response.status_code == 200
        yield http


def ticket_url(http: httpx.Client, env: Env, path: str) -> str:
    """Open a protected page of the client; return where the gateway sends the browser."""
    first = http.get(f"{env.client}{path}")
    assert first.status_code == 302
    assert first.headers["location"].startswith(f"{env.gateway}/cas/login?service=")
    issued = http.get(first.headers["location"])
    assert issued.status_code == 302, issued.text
    location = issued.headers["location"]
    assert location.startswith(f"{env.client}{path}?ticket=ST-")
    return location


def ticket_of(location: str) -> str:
    return parse_qs(urlsplit(location).query)["ticket"][0]


def test_success_releases_registered_claims_masked(env: Env) -> None:
    with browser(env) as http:
        result = http.get(ticket_url(http, env, "/app/plain")).json()
    assert result["user"] == "c-0001"
    assert result["attributes"] == {"acr": "L2", "name": "张三",
                                    "phone_number": "138****1234",
                                    "id_number": "430***********1234"}  # no birthdate


def test_privileged_system_gets_unmasked_numbers(env: Env) -> None:
    with browser(env) as http:
        result = http.get(ticket_url(http, env, "/app/priv")).json()
    assert result["attributes"]["phone_number"] == PHONE
    assert result["attributes"]["id_number"] == ID_NUMBER


def test_values_are_xml_escaped(env: Env) -> None:
    with browser(env, name="张<三>&\"李\"") as http:
        result = http.get(ticket_url(http, env, "/app/plain")).json()
    assert result["attributes"]["name"] == "张<三>&\"李\""


def test_replayed_ticket_is_invalid(env: Env) -> None:
    with browser(env) as http:
        location = ticket_url(http, env, "/app/plain")
        assert http.get(location).json()["user"] == "c-0001"
        assert http.get(location).json() == {"failure": "INVALID_TICKET"}


def test_wrong_service_is_invalid_and_spends_the_ticket(env: Env) -> None:
    with browser(env) as http:
        location = ticket_url(http, env, "/app/plain")
        wrong = http.get(location + "&" + urlencode({"as": f"{env.client}/app/priv"}))
        assert wrong.json() == {"failure": "INVALID_SERVICE"}
        assert http.get(location).json() == {"failure": "INVALID_TICKET"}


def test_expired_ticket_is_invalid(env: Env) -> None:
    with browser(env) as http:
        location = ticket_url(http, env, "/app/plain")
        env.clock.offset += 61
        try:
            assert http.get(location).json() == {"failure": "INVALID_TICKET"}
        finally:
            env.clock.offset -= 61


def test_service_validate_returns_the_user_only(env: Env) -> None:
    with browser(env) as http:
        location = ticket_url(http, env, "/app/plain")
    reply = httpx.get(f"{env.gateway}/cas/serviceValidate",
                      params={"service": f"{env.client}/app/plain", "ticket": ticket_of(location)})
    assert reply.headers["content-type"].startswith("application/xml")
    assert parse_cas(reply.text) == {"user": "c-0001", "attributes": None}


@pytest.mark.parametrize(("params", "code"), [
    ({"service": "http://127.0.0.1:1/app/plain"}, "INVALID_REQUEST"),
    ({"ticket": "ST-x"}, "INVALID_REQUEST"),
    ({"service": "http://127.0.0.1:1/app/plain", "ticket": "PT-x"}, "INVALID_TICKET"),
    ({"service": "http://127.0.0.1:1/app/plain", "ticket": "ST-unknown"}, "INVALID_TICKET"),
])
def test_bad_validation_requests(env: Env, params: dict[str, str], code: str) -> None:
    for path in ("/cas/serviceValidate", "/cas/p3/serviceValidate"):
        reply = httpx.get(f"{env.gateway}{path}", params=params)
        assert parse_cas(reply.text) == {"failure": code}


@pytest.mark.parametrize("service", [
    "https://evil.example/app/plain",
    "http://127.0.0.1:1/elsewhere",
    "{client}/app/plainer",  # a prefix matches only at a boundary
    "{client}/app",
    "",
])
def test_unknown_service_gets_a_page_not_a_redirect(env: Env, service: str) -> None:
    before = env.store.snapshot()
    with browser(env) as http:
        after_login = env.store.snapshot()
        response = http.get(f"{env.gateway}/cas/login",
                            params={"service": service.format(client=env.client)})
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "text/html" in response.headers["content-type"]
    assert "服务地址" in response.text
    assert not any(k[0] == Kind.CAS_TICKET for k in set(env.store.snapshot()) - set(after_login))
    assert len(before) <= len(after_login)


def test_no_session_goes_to_login_with_next(env: Env) -> None:
    service = f"{env.client}/app/plain"
    with browser(env, acr=None) as http:
        response = http.get(f"{env.gateway}/cas/login", params={"service": service})
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/login"
    next_url = parse_qs(location.query)["next"][0]
    assert next_url == f"/cas/login?service={quote(service, safe='')}"


def test_renew_forces_login(env: Env) -> None:
    with browser(env) as http:
        response = http.get(f"{env.gateway}/cas/login",
                            params={"service": f"{env.client}/app/plain", "renew": "true"})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


def test_low_level_session_is_stepped_up(env: Env) -> None:
    service = f"{env.client}/app/strict"
    with browser(env, acr="L2") as http:
        response = http.get(f"{env.gateway}/cas/login", params={"service": service})
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/stepup"
    query = parse_qs(location.query)
    assert query["acr"] == ["L3"]
    assert query["next"] == [f"/cas/login?service={quote(service, safe='')}"]
    with browser(env, acr="L3") as http:
        assert ticket_url(http, env, "/app/strict")


def test_logout_shows_the_gateway_logout(env: Env) -> None:
    response = httpx.get(f"{env.gateway}/cas/logout", params={"service": env.client})
    assert response.status_code == 303
    assert response.headers["location"] == "/my/logins"


def test_config_and_prefix_rules() -> None:
    assert CasConfig.model_validate({"services": ["https://gjj.example.cn/app/"]})
    bad_settings: list[dict[str, Any]] = [
        {"services": []}, {"services": ["http://gjj.example.cn/"]},
        {"services": ["https://u@gjj.example.cn/"]}, {"services": ["/relative"]},
        {"services": ["https://gjj.example.cn/"], "extra": 1}]
    for bad in bad_settings:
        with pytest.raises(ValidationError):
            CasConfig.model_validate(bad)
    prefixes = ("https://a.gov.cn",)
    assert service_allowed("https://a.gov.cn", prefixes)
    assert service_allowed("https://a.gov.cn/x?y=1", prefixes)
    assert not service_allowed("https://a.gov.cn.evil.example/", prefixes)
    assert not service_allowed("https://a.gov.cn/\nx", prefixes)


async def test_connector_login_url() -> None:
    ctx = ConnectorContext(keys=KeyRing.ephemeral(), issuer="https://sso.hunan.gov.cn/")
    cas = CasConfig.model_validate({"services": ["https://gjj.example.cn/app/"]}).open(ctx)
    identity = Identity(subject="c-1", kind=PersonKind.NATURAL, acr="L2", amr=("pwd",),
                        auth_time=0, region="430102")
    route = SystemRoute(system_id="gjj", system_name="公积金", base_url="https://gjj.example.cn")
    assert cas.type_name == "cas"
    assert await cas.login_url(identity, route, "https://gjj.example.cn/app/x") == \
        "https://sso.hunan.gov.cn/cas/login?service=https%3A%2F%2Fgjj.example.cn%2Fapp%2Fx"
    with pytest.raises(ValueError, match="not a registered service"):
        await cas.login_url(identity, route, "https://evil.example/")
