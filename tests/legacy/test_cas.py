"""The gateway as a CAS 3.0 server, driven by a real CAS client app over real HTTP.

The client behaves like a Java CAS client: it sends the browser to ``/cas/login``, then
validates the ticket server-to-server at ``/cas/p3/serviceValidate`` and parses the XML.
"""

from __future__ import annotations

import contextlib
import re
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
from gateway.wiring.parts import open_connectors
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
               privileged: bool = False, sector: str = "") -> SystemConfig:
    return SystemConfig.model_validate({
        "id": sid, "name": f"测试系统 {sid}", "region": "430100", "level": "prefecture",
        "instances": ["http://127.0.0.1:9"], "connector": "cas",
        "connector_settings": {"services": services}, "items": [ITEM], "min_acr": min_acr,
        "claims": ["name", "phone_number", "id_number"], "privileged": privileged,
        **({"subject_type": "pairwise", "sector": sector} if sector else {}),
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

    async def stepup(request: Request) -> Response:
        """Test-only: raise the current session's level, as a step-up factor does."""
        session = await sessions.load(request)
        assert session is not None
        identity = session.identity.with_auth(acr=request.query_params["acr"],
                                              amr=(*session.identity.amr, "sms"),
                                              auth_time=int(time.time()))
        response = Response("ok")
        await sessions.elevate(session, identity, response)
        return response

    return Starlette(routes=[
        Route("/test/login", login, methods=["GET"]),
        Route("/test/stepup", stepup, methods=["GET"]),
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
        cas_system("legacy-pair-a", [f"{client}/app/pair-a"], sector="a.example.cn"),
        cas_system("legacy-pair-a2", [f"{client}/app/pair-a2"], sector="a.example.cn"),
        cas_system("legacy-pair-b", [f"{client}/app/pair-b"], sector="b.example.cn"),
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


def test_a_pairwise_system_sees_a_subject_of_its_sector_alone(env: Env) -> None:
    with browser(env) as http:
        seen = {path: http.get(ticket_url(http, env, path)).json()["user"]
                for path in ("/app/pair-a", "/app/pair-a2", "/app/pair-b")}
        again = http.get(ticket_url(http, env, "/app/pair-a")).json()["user"]
    assert seen["/app/pair-a"] == seen["/app/pair-a2"] == again  # one sector, one sub
    assert seen["/app/pair-a"] != seen["/app/pair-b"]
    assert "c-0001" not in seen.values()  # the person's own sub is never presented


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
    # dot segments climb out of the prefix: literal, encoded (any case), twice encoded,
    # with a path parameter (Tomcat, Jetty and Spring read ..; as ..), with a backslash
    "{client}/app/plain/../priv",
    "{client}/app/plain/./../priv",
    "{client}/app/plain/%2e%2e/priv",
    "{client}/app/plain/%2E%2e/priv",
    "{client}/app/plain/.%2E/priv",
    "{client}/app/plain/%252e%252e/priv",
    "{client}/app/plain/%2e%2e%2fpriv",
    "{client}/app/plain/..;/priv",
    "{client}/app/plain/..;x=1/priv",
    "{client}/app/plain/%2e%2e;/priv",
    "{client}/app/plain/.;/..;/priv",
    "{client}/app/plain/..%5cpriv",
    "{client}/app/plain/%zz",  # not percent-encoding
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
    assert re.search(r'<code id="ref">[^<]+</code>', response.text)  # a reference id
    assert not any(k[0] == Kind.CAS_TICKET for k in set(env.store.snapshot()) - set(after_login))
    assert len(before) <= len(after_login)


def test_no_session_goes_to_login_with_next(env: Env) -> None:
    service = f"{env.client}/app/plain"
    with browser(env, acr=None) as http:
        response = http.get(f"{env.gateway}/cas/login", params={"service": service})
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/login"
    next_url = urlsplit(parse_qs(location.query)["next"][0])
    assert next_url.path == "/cas/login"
    back = parse_qs(next_url.query)
    assert back["service"] == [service]
    assert "renew" not in back
    assert len(back["fresh"][0]) >= 32  # the trip to the login page, one-time


def login_trip(http: httpx.Client, env: Env, params: dict[str, str]) -> str:
    """``/cas/login`` with ``params`` must send the browser to log in; returns where it
    comes back to afterwards (``next``), absolute."""
    response = http.get(f"{env.gateway}/cas/login", params=params)
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert location.path == "/login"
    return env.gateway + parse_qs(location.query)["next"][0]


def validate(env: Env, service: str, location: str, **extra: str) -> dict[str, Any]:
    reply = httpx.get(f"{env.gateway}/cas/p3/serviceValidate",
                      params={"service": service, "ticket": ticket_of(location), **extra})
    return parse_cas(reply.text)


def test_renew_forces_a_fresh_primary_login(env: Env) -> None:
    """CAS 3.0 §2.1.1: with renew the SSO session is never used; the way back from the
    login page issues a ticket only once a primary login was made after the request."""
    service = f"{env.client}/app/plain"
    with browser(env) as http:
        back = login_trip(http, env, {"service": service, "renew": "true"})
        assert parse_qs(urlsplit(back).query)["renew"] == ["true"]
        # coming back without logging in again: to the login page again, no ticket
        again = http.get(back)
        assert again.status_code == 303
        assert urlsplit(again.headers["location"]).path == "/login"
        # a fresh login, then back: the ticket, good for a renew validation
        assert http.get(f"{env.gateway}/test/login").status_code == 200
        issued = http.get(back)
        assert issued.status_code == 302, issued.text
        location = issued.headers["location"]
        assert location.startswith(f"{service}?ticket=ST-")
        assert validate(env, service, location, renew="true")["user"] == "c-0001"
        # the trip is one-time: back once more is a login again, not a second ticket
        assert urlsplit(http.get(back).headers["location"]).path == "/login"


def test_renew_is_not_met_by_a_step_up(env: Env) -> None:
    """A step-up is no primary login: it keeps the session's start."""
    service = f"{env.client}/app/strict"
    with browser(env, acr="L2") as http:
        back = login_trip(http, env, {"service": service, "renew": "true"})
        assert http.get(f"{env.gateway}/test/stepup", params={"acr": "L3"}).status_code == 200
        again = http.get(back)
        assert again.status_code == 303
        assert urlsplit(again.headers["location"]).path == "/login"


def test_renew_validation_refuses_a_ticket_from_the_sso_session(env: Env) -> None:
    """CAS 3.0 §2.5.1: serviceValidate with renew fails for a ticket the SSO session got."""
    service = f"{env.client}/app/plain"
    with browser(env) as http:
        location = ticket_url(http, env, "/app/plain")
        assert validate(env, service, location, renew="true") == {"failure": "INVALID_TICKET"}
        assert validate(env, service, location) == {"failure": "INVALID_TICKET"}  # spent
        location = ticket_url(http, env, "/app/plain")
        assert validate(env, service, location)["user"] == "c-0001"  # without renew: fine


def test_a_ticket_right_after_a_login_is_from_a_primary_login(env: Env) -> None:
    service = f"{env.client}/app/plain"
    with browser(env, acr=None) as http:
        back = login_trip(http, env, {"service": service})
        assert http.get(f"{env.gateway}/test/login").status_code == 200
        issued = http.get(back)
        assert issued.status_code == 302
        assert validate(env, service, issued.headers["location"],
                        renew="true")["user"] == "c-0001"


def test_a_service_url_is_compared_normalised(env: Env) -> None:
    """Percent-encoded unreserved characters, scheme case and the default port are the
    same URL; the ticket goes back to the URL exactly as sent."""
    service = f"{env.client}/%61pp/plain/x%7E1"
    with browser(env) as http:
        issued = http.get(f"{env.gateway}/cas/login", params={"service": service})
        assert issued.status_code == 302, issued.text
        location = issued.headers["location"]
        assert location.startswith(f"{service}?ticket=ST-")
        assert validate(env, service, location)["user"] == "c-0001"


async def test_validation_refuses_a_service_outside_every_prefix(env: Env) -> None:
    """A ticket that names a service above its prefix (made before the rule, or planted)
    validates for nobody: INVALID_SERVICE, and it is spent."""
    service = f"{env.client}/app/plain/%2e%2e/priv"
    await env.store.upsert(Kind.CAS_TICKET, "ST-planted", {
        "service": service, "system_id": "legacy-cas", "sub": "c-0001",
        "claims": {"name": "张三"}, "primary": True}, 60)
    async with httpx.AsyncClient() as http:
        for failure in ("INVALID_SERVICE", "INVALID_TICKET"):
            reply = await http.get(f"{env.gateway}/cas/p3/serviceValidate",
                                   params={"service": service, "ticket": "ST-planted"})
            assert parse_cas(reply.text) == {"failure": failure}


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
    assert not service_allowed("https://a.gov.cn/x/../y", prefixes)
    assert service_allowed("HTTPS://A.gov.cn:443/x/y", ("https://a.gov.cn/x/",))
    assert not service_allowed("https://a.gov.cn/xy", ("https://a.gov.cn/x",))
    with pytest.raises(ValidationError, match="dot segments"):
        CasConfig.model_validate({"services": ["https://gjj.example.cn/app/../"]})


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
