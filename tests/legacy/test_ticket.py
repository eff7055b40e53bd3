"""One-time tickets: a real system app redeems them server-to-server with its credentials."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base import ConnectorContext
from connectors.base import Route as SystemRoute
from connectors.ticket import TicketConfig
from gateway.config import ServiceItem, SessionSection, SystemConfig, Systems
from gateway.identity import Identity, PersonKind
from gateway.keys import KeyRing
from gateway.legacy.access import Gate
from gateway.legacy.ticket import TicketEndpoints
from gateway.pages import Pages
from gateway.sessions import SessionManager
from gateway.store.memory import MemoryStore
from gateway.wiring.parts import open_connectors
from tests.support.servers import free_port, serve

ITEM = "430000-GJJ-001"
SECRETS = {"sys-a": "a" * 32, "sys-b": "b" * 32}


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def ticket_system(sid: str, instance: str, *, min_acr: str = "L1") -> SystemConfig:
    return SystemConfig.model_validate({
        "id": sid, "name": f"测试系统 {sid}", "region": "430100", "level": "prefecture",
        "instances": [instance], "connector": "ticket",
        "connector_settings": {"secret": SECRETS[sid], "ttl": 30}, "items": [ITEM],
        "min_acr": min_acr, "claims": ["name", "phone_number"],
    })


def gateway_app(systems: Systems, store: MemoryStore) -> Starlette:
    sessions = SessionManager(store, SessionSection(), issuer="http://127.0.0.1:8000")
    context = ConnectorContext(keys=KeyRing.ephemeral(), issuer="http://127.0.0.1:8000")
    tickets = TicketEndpoints(systems=systems, connectors=open_connectors(systems, context),
                              gate=Gate(sessions), store=store, pages=Pages())

    async def login(request: Request) -> Response:
        identity = Identity(subject="c-0001", kind=PersonKind.NATURAL,
                            acr=request.query_params.get("acr", "L2"), amr=("pwd",),
                            auth_time=int(time.time()), region="430102",
                            claims={"name": "张三", "phone_number": "13812341234",
                                    "id_number": "430102199001011234"})
        response = Response("ok")
        await sessions.start(identity, response)
        return response

    return Starlette(routes=[
        Route("/test/login", login, methods=["GET"]),
        Route("/ticket/issue", tickets.issue, methods=["GET"]),
        Route("/ticket/redeem", tickets.redeem, methods=["POST"]),
    ])


def system_app(gateway: str) -> Starlette:
    """A legacy system: takes ``?ticket=`` and redeems it with its own credentials
    (``?as=`` makes it present another system's, for the binding test)."""

    async def page(request: Request) -> Response:
        system = request.query_params.get("as", request.path_params["system"])
        async with httpx.AsyncClient(timeout=10) as http:
            reply = await http.post(f"{gateway}/ticket/redeem",
                                    data={"ticket": request.query_params.get("ticket", "")},
                                    auth=(system, SECRETS.get(system, "x" * 32)))
        return JSONResponse({"status": reply.status_code, "body": reply.json()})

    return Starlette(routes=[Route("/{system}/{rest:path}", page, methods=["GET"])])


@dataclass
class Env:
    gateway: str
    system: str
    clock: Clock


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    port = free_port()
    upstream = f"http://127.0.0.1:{port}"
    clock = Clock()
    store = MemoryStore(clock=clock)
    systems = Systems([
        ticket_system("sys-a", f"{upstream}/sys-a"),
        ticket_system("sys-b", f"{upstream}/sys-b", min_acr="L3"),
    ], [ServiceItem(code=ITEM, name="住房公积金提取")])
    with serve(gateway_app(systems, store)) as gateway, serve(system_app(gateway), port=port):
        yield Env(gateway, upstream, clock)


@contextlib.contextmanager
def browser(env: Env, *, acr: str | None = "L2") -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, follow_redirects=False) as http:
        if acr is not None:
            assert http.get(f"{env.gateway}/test/login", params={"acr": acr}).status_code == 200
        yield http


def issue(http: httpx.Client, env: Env, system: str = "sys-a", path: str = "/x?a=1") -> str:
    target = f"{env.system}/{system}{path}"
    response = http.get(f"{env.gateway}/ticket/issue", params={"system": system, "target": target})
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(target + "&ticket=")
    return location


def test_redeem_releases_registered_claims_masked(env: Env) -> None:
    with browser(env) as http:
        result = http.get(issue(http, env)).json()
    assert result == {"status": 200, "body": {"sub": "c-0001", "acr": "L2", "name": "张三",
                                              "phone_number": "138****1234"}}


def test_ticket_is_single_use(env: Env) -> None:
    with browser(env) as http:
        location = issue(http, env)
        assert http.get(location).json()["status"] == 200
        assert http.get(location).json() == {"status": 400, "body": {
            "error": "invalid_grant",
            "error_description": "The ticket is unknown, expired or already used."}}


def test_ticket_is_bound_to_its_system(env: Env) -> None:
    with browser(env) as http:
        location = issue(http, env)
        other = http.get(location + "&" + urlencode({"as": "sys-b"})).json()
        assert other["status"] == 400
        assert other["body"]["error"] == "invalid_grant"
        assert http.get(location).json()["status"] == 400  # spent


def test_expired_ticket(env: Env) -> None:
    with browser(env) as http:
        location = issue(http, env)
        env.clock.offset += 31
        try:
            assert http.get(location).json()["body"]["error"] == "invalid_grant"
        finally:
            env.clock.offset -= 31


@pytest.mark.parametrize("auth", [("sys-a", "wrong" * 8), ("nobody", "x" * 32), None])
def test_redeem_needs_system_credentials(env: Env, auth: tuple[str, str] | None) -> None:
    with browser(env) as http:
        ticket = parse_qs(urlsplit(issue(http, env)).query)["ticket"][0]
    reply = httpx.post(f"{env.gateway}/ticket/redeem", data={"ticket": ticket}, auth=auth)
    assert reply.status_code == 401
    assert reply.json()["error"] == "invalid_client"
    ok = httpx.post(f"{env.gateway}/ticket/redeem", data={"ticket": ticket},
                    auth=("sys-a", SECRETS["sys-a"]))
    assert ok.status_code == 200  # a failed authentication did not spend it


@pytest.mark.parametrize(("system", "target"), [
    ("nope", "{up}/sys-a/x"),
    ("sys-a", "https://evil.example/sys-a/x"),
    ("sys-a", "{up}/sys-b/x"),
    ("sys-a", "{up}/sys-abc"),
    ("sys-a", ""),
    # dot segments climb out of the instance, however they are written
    ("sys-a", "{up}/sys-a/../sys-b/x"),
    ("sys-a", "{up}/sys-a/%2e%2e/sys-b/x"),
    ("sys-a", "{up}/sys-a/%2E%2E/sys-b/x"),
    ("sys-a", "{up}/sys-a/%252e%252e/sys-b/x"),
    ("sys-a", "{up}/sys-a/..;/sys-b/x"),
    ("sys-a", "{up}/sys-a/.;/..;/sys-b/x"),
    ("sys-a", "{up}/sys-a/%2e%2e%2fsys-b/x"),
])
def test_bad_issue_gets_a_page_not_a_redirect(env: Env, system: str, target: str) -> None:
    with browser(env) as http:
        response = http.get(f"{env.gateway}/ticket/issue",
                            params={"system": system, "target": target.format(up=env.system)})
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "text/html" in response.headers["content-type"]
    assert '<code id="ref">' in response.text  # a reference id


def test_a_target_is_compared_normalised(env: Env) -> None:
    with browser(env) as http:
        location = issue(http, env, path="/%78?a=1")  # %78 is x
        assert http.get(location).json()["status"] == 200


def test_no_session_and_step_up(env: Env) -> None:
    with browser(env, acr=None) as http:
        response = http.get(f"{env.gateway}/ticket/issue",
                            params={"system": "sys-a", "target": f"{env.system}/sys-a/x"})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2Fticket%2Fissue%3F")
    with browser(env, acr="L2") as http:
        response = http.get(f"{env.gateway}/ticket/issue",
                            params={"system": "sys-b", "target": f"{env.system}/sys-b/x"})
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/stepup"
    assert parse_qs(location.query)["acr"] == ["L3"]
    with browser(env, acr="L3") as http:
        assert http.get(issue(http, env, "sys-b")).json()["status"] == 200


async def test_config_and_connector() -> None:
    bad_settings: list[dict[str, Any]] = [
        {"secret": "a" * 32, "ttl": 61}, {"secret": "short"}, {},
        {"secret": "a" * 32, "secret_env": "X"}, {"secret_env": "ROAM_TEST_UNSET_VARIABLE"},
        {"secret": "a" * 32, "extra": 1}]
    for bad in bad_settings:
        with pytest.raises(ValidationError):
            TicketConfig.model_validate(bad)
    ctx = ConnectorContext(keys=KeyRing.ephemeral(), issuer="https://sso.hunan.gov.cn/")
    ticket = TicketConfig.model_validate({"secret": "s" * 32}).open(ctx)
    assert ticket.type_name == "ticket"
    assert ticket.ttl == 60
    assert ticket.check_secret("s" * 32)
    assert not ticket.check_secret("t" * 32)
    assert "s" * 32 not in repr(ticket)
    assert ticket.secret_sha256 not in repr(ticket)
    identity = Identity(subject="c-1", kind=PersonKind.NATURAL, acr="L2", amr=("pwd",),
                        auth_time=0, region="430102")
    route = SystemRoute(system_id="gjj", system_name="公积金", base_url="https://gjj.example.cn")
    assert await ticket.login_url(identity, route, "https://gjj.example.cn/a") == (
        "https://sso.hunan.gov.cn/ticket/issue?system=gjj&target=https%3A%2F%2Fgjj.example.cn%2Fa")
    for outside in ("https://gjj.example.cn.evil.example/", "https://gjj.example.cn/a/../../x"):
        with pytest.raises(ValueError, match="not under gjj's instance"):
            await ticket.login_url(identity, route, outside)
