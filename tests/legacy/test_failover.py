"""A way into a system naming an instance that is out: moved onto a usable instance, or,
with none left, on through /go a level up."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import ConnectorContext
from gateway.config import ServiceItem, SessionSection, SystemConfig, Systems
from gateway.health import HealthChecks
from gateway.identity import Identity, PersonKind
from gateway.keys import KeyRing
from gateway.legacy.access import Gate
from gateway.legacy.failover import Failover
from gateway.legacy.ticket import TicketEndpoints
from gateway.pages import Pages
from gateway.sessions import SessionManager
from gateway.store.memory import MemoryStore
from gateway.wiring.parts import open_connectors
from tests.support.health import local_health
from tests.support.servers import serve

GJJ, SB = "430000-GJJ-001", "430000-SB-001"
ONE, TWO = "https://a.example.gov.cn/app", "https://b.example.gov.cn/app"
ISSUER = "https://sso.example.gov.cn"


def systems(*items: str, instances: tuple[str, ...] = (ONE, TWO)) -> Systems:
    return Systems([SystemConfig(
        id="sys", name="湘潭市住房公积金", region="430300", level="prefecture",
        instances=instances, connector="ticket", items=items or (GJJ,),
        connector_settings={"secret": "s" * 32, "ttl": 30})],
        [ServiceItem(code=GJJ, name="住房公积金提取"), ServiceItem(code=SB, name="社保查询")])


def failover(registry: Systems, *drained: str) -> tuple[Failover, HealthChecks]:
    health = local_health(registry)
    for instance in drained:
        asyncio.run(health.shared.drain("sys", instance, by="ops"))
    return Failover(systems=registry, pages=Pages(), issuer=ISSUER, health=health), health


def test_a_url_on_a_usable_instance_stays_as_it_is() -> None:
    moving, _ = failover(systems())
    system = moving.systems.get("sys")
    assert system is not None
    assert moving.onto_usable(f"{ONE}/x?y=1", system) == f"{ONE}/x?y=1"
    elsewhere = "https://portal.example.gov.cn/sys"  # under no instance: nothing to say
    assert moving.onto_usable(elsewhere, system) == elsewhere


def test_a_url_on_an_instance_that_is_out_moves_to_a_usable_one() -> None:
    moving, _ = failover(systems(), ONE)
    system = moving.systems.get("sys")
    assert system is not None
    assert moving.onto_usable(f"{ONE}/x/y?z=1&w=%7E", system) == f"{TWO}/x/y?z=1&w=~"
    assert moving.onto_usable("HTTPS://A.example.gov.cn:443/app", system) == TWO
    assert moving.onto_usable(f"{TWO}/x", system) == f"{TWO}/x"


def test_with_no_instance_left_one_item_goes_on_through_go() -> None:
    moving, _ = failover(systems(), ONE, TWO)
    system = moving.systems.get("sys")
    assert system is not None
    assert moving.onto_usable(f"{ONE}/x", system) is None
    answer = moving.elsewhere(system)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{ISSUER}/go/{GJJ}?region=430300"


def test_with_no_instance_left_several_items_are_a_page_to_choose_from() -> None:
    moving, _ = failover(systems(GJJ, SB), ONE, TWO)
    system = moving.systems.get("sys")
    assert system is not None
    page = moving.elsewhere(system)
    assert page.status_code == 503
    text = bytes(page.body).decode()
    assert "湘潭市住房公积金正在维护" in text  # every instance drained: maintenance
    assert f'href="{ISSUER}/go/{SB}?region=430300"' in text
    assert "社保查询" in text


def test_a_ticket_for_an_instance_that_is_out_is_issued_for_a_usable_one() -> None:
    registry = systems(instances=("http://127.0.0.1:9301/app", "http://127.0.0.1:9302/app"))
    store = MemoryStore()
    health = local_health(registry, store)
    sessions = SessionManager(store, SessionSection(), issuer="http://127.0.0.1:8000")
    moving = Failover(systems=registry, pages=Pages(), issuer="http://127.0.0.1:8000",
                      health=health)
    context = ConnectorContext(keys=KeyRing.ephemeral(), issuer="http://127.0.0.1:8000")
    tickets = TicketEndpoints(systems=registry, connectors=open_connectors(registry, context),
                              gate=Gate(sessions), store=store, pages=Pages(),
                              failover=moving)

    async def login(request: Request) -> Response:
        response = Response("ok")
        await sessions.start(Identity(subject="c-0001", kind=PersonKind.NATURAL, acr="L2",
                                      amr=("pwd",), auth_time=int(time.time()),
                                      region="430102", claims={}), response)
        return response

    app = Starlette(routes=[Route("/test/login", login), Route("/ticket/issue", tickets.issue)])
    with serve(app) as url, httpx.Client(base_url=url) as browser:
        browser.get("/test/login")
        asyncio.run(health.shared.drain("sys", "1", by="ops"))
        issued = browser.get("/ticket/issue?" + urlencode(
            {"system": "sys", "target": "http://127.0.0.1:9301/app/form?id=7"}))
        assert issued.status_code == 302
        moved = urlsplit(issued.headers["location"])
        assert (moved.netloc, moved.path) == ("127.0.0.1:9302", "/app/form")
        assert parse_qs(moved.query)["id"] == ["7"]
        asyncio.run(health.shared.drain("sys", "2", by="ops"))
        gone = browser.get("/ticket/issue?" + urlencode(
            {"system": "sys", "target": "http://127.0.0.1:9302/app/"}))
        assert gone.status_code == 303
        assert gone.headers["location"] == f"http://127.0.0.1:8000/go/{GJJ}?region=430300"
