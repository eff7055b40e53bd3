"""Structured logs: a value a client sent never ends a line or writes one of its own, and
every line written while a request is served names the request."""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gateway.app import create_app
from gateway.logs import MAX_FIELD, JsonFormatter, RequestIds, current_request_id
from gateway.server import uvicorn_config
from gateway.store.memory import MemoryStore
from tests.support.audit import trail_lines
from tests.support.gateway import (
    CITIZEN,
    DEMO_PASSWORD,
    config_on_port,
    form_field,
    gateway_process,
)
from tests.support.servers import free_port

FORGED_PATH = '/go/x%0a{"forged":1}'
FORGED_ITEM = 'x\n{"forged":1}'
# What a terminal or a line reader would act on: line ends, ANSI (7- and 8-bit CSI),
# Unicode line separators, a bidi override.
NASTY = 'a\r\n{"forged":2}\x1b[2J\x9b31m\u2028\u2029\u202eb\x85'
HEX_ID = re.compile(r"[0-9a-f]{16}")


def lines_of(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object (fails on any line that is not one)."""
    objects = []
    for line in text.split("\n"):
        if not line:
            continue
        value = json.loads(line)
        assert isinstance(value, dict), line
        objects.append(value)
    return objects


def no_line_is_forged(objects: list[dict[str, Any]]) -> None:
    assert all("forged" not in o for o in objects), objects


def formatted(msg: str, *args: object, exc_info: Any = None, **extra: Any) -> str:
    record = logging.getLogger("roam.test").makeRecord(
        "roam.test", logging.INFO, __file__, 1, msg, args, exc_info, extra=extra)
    return JsonFormatter().format(record)


# -- the formatter --------------------------------------------------------------------------


def test_a_record_is_one_json_line_whatever_its_values_hold() -> None:
    out = formatted("go %s", NASTY, item=NASTY, region="430102", nested={"k": NASTY})
    assert "\n" not in out
    assert "\r" not in out
    assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202e]", out)  # all escaped
    assert out.splitlines() == [out]
    got = json.loads(out)
    assert got["msg"] == f"go {NASTY}"
    assert got["item"] == NASTY  # the value comes back exactly, as a field of its own
    assert got["nested"] == {"k": NASTY}
    assert got["region"] == "430102"
    assert got["level"] == "INFO"
    assert got["logger"] == "roam.test"
    assert "forged" not in got
    assert "request_id" not in got  # no request is being served


def test_tracebacks_bad_arguments_and_odd_values_stay_on_one_line() -> None:
    try:
        raise ValueError("boom\nline two")
    except ValueError:
        out = formatted("failed", exc_info=sys.exc_info())
    got = json.loads(out)
    assert "\n" not in out
    assert "Traceback" in got["exc"]
    assert "boom\nline two" in got["exc"]

    got = json.loads(formatted("%d items", "not a number"))  # the message cannot be built
    assert "%d items" in got["msg"]

    out = formatted("odd", surrogate="\udc80", big=2**70, when=object(), raw=b"\n")
    assert "\n" not in out
    got = json.loads(out)
    assert got["surrogate"] == "\udc80"
    assert got["big"] == 2**70

    got = json.loads(formatted("long", value="x" * (MAX_FIELD + 500)))
    assert len(got["value"]) == MAX_FIELD + 1


# -- request ids ----------------------------------------------------------------------------


def echo_app() -> Starlette:
    async def hello(request: Request) -> Response:
        logging.getLogger("roam.test").warning("inside", extra={"seen": current_request_id()})
        return PlainTextResponse(current_request_id() or "")

    async def own(request: Request) -> Response:
        return PlainTextResponse("x", headers={"X-Request-Id": "system-own-id"})

    return Starlette(routes=[Route("/", hello), Route("/own", own)])


@pytest.mark.parametrize(("sent", "kept"), [
    ("lb-7f3a:0001", True),
    ("0f8fad5b-d9cb-469f-a165-70867728950e", True),
    ("x" * 64, True),
    ("x" * 65, False),
    ("", False),
    ("-starts-with-a-dash", False),
    ("a b", False),
    ("id\r\nX-Forged: 1", False),
    ("id\x1b[31m", False),
    ("id\u2028", False),
])
async def test_an_incoming_request_id_is_kept_only_when_it_is_safe(
        sent: str, kept: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.setFormatter(JsonFormatter())
    # httpx's ASGI transport comes from 127.0.0.1: here, the load balancer in front
    app = RequestIds(echo_app(), trusted=("127.0.0.0/8",))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        response = await http.get("/", headers={b"X-Request-Id": sent.encode("utf-8")})
    request_id = response.headers["x-request-id"]
    assert response.text == request_id  # what the app saw is what the answer says
    if kept:
        assert request_id == sent
    else:
        assert HEX_ID.fullmatch(request_id)
    [line] = [o for o in lines_of(caplog.text) if o["logger"] == "roam.test"]
    assert line["request_id"] == line["seen"] == request_id
    assert current_request_id() is None  # nothing leaks past the request


async def test_a_request_id_from_anyone_but_a_trusted_proxy_is_replaced() -> None:
    for trusted in ((), ("10.0.0.0/8",)):
        transport = httpx.ASGITransport(app=RequestIds(echo_app(), trusted=trusted))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            response = await http.get("/", headers={"X-Request-Id": "someone-elses-id"})
        assert HEX_ID.fullmatch(response.headers["x-request-id"]), trusted


async def test_each_request_gets_its_own_id_and_a_systems_own_is_kept() -> None:
    transport = httpx.ASGITransport(app=RequestIds(echo_app()))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        first, second = (await http.get("/")).text, (await http.get("/")).text
        own = await http.get("/own")
    assert first != second
    assert own.headers.get_list("x-request-id") == ["system-own-id"]


# -- the real app, in process: the forged /go path and nasty headers ----------------------


async def test_the_gateway_writes_no_forged_line_in_process(
        caplog: pytest.LogCaptureFixture) -> None:
    """The app as ``roam serve`` wraps it (``uvicorn_config``), driven through httpx's ASGI
    transport so that headers a real HTTP parser would refuse (CR, LF) reach it too."""
    caplog.set_level(logging.INFO)
    caplog.handler.setFormatter(JsonFormatter())
    port = free_port()
    inner = create_app(config_on_port(port), store=MemoryStore())
    app = uvicorn_config(inner, host="127.0.0.1", port=port).app
    assert isinstance(app, RequestIds)
    nasty = {b"User-Agent": NASTY.encode("utf-8"), b"X-Request-Id": NASTY.encode("utf-8")}
    async with inner.router.lifespan_context(inner), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=f"http://127.0.0.1:{port}",
            headers=nasty) as http:
        to_login = await http.get(FORGED_PATH)
        assert to_login.status_code == 303
        page = await http.get((await http.get(to_login.headers["location"])).headers["location"])
        form = {"csrf_token": form_field(page.text, "csrf_token"),
                "r": form_field(page.text, "r"), "username": CITIZEN}
        failed = await http.post("/login", data={**form, "password": "wrong"})
        assert failed.status_code == 401
        back = await http.post("/login", data={**form, "password": DEMO_PASSWORD})
        assert back.status_code == 303
        not_found = await http.get(FORGED_PATH)
    assert not_found.status_code == 404
    objects = lines_of(caplog.text)
    no_line_is_forged(objects)
    assert all(NASTY not in json.dumps(o) for o in objects)  # the refused id went nowhere
    [go] = [o for o in objects if o["msg"] == "route.resolve" and o["outcome"] == "failure"]
    assert go["logger"] == "roam.audit"
    assert go["item"] == FORGED_ITEM
    assert go["request_id"] == not_found.headers["x-request-id"]
    assert HEX_ID.fullmatch(go["request_id"])
    assert go["ref"] in not_found.text  # the page's reference id is on the same line
    [failure] = [o for o in objects if o["msg"] == "login" and o["outcome"] == "failure"]
    assert failure["subject"] == "138****0001"
    assert failure["request_id"] == failed.headers["x-request-id"] != go["request_id"]


# -- the real process: every line `roam serve` writes is JSON ------------------------------


@pytest.fixture
def roam_serve(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    with gateway_process(free_port(), env={"ROAM_AUDIT_PATH": str(tmp_path / "audit.jsonl")}
                         ) as running:
        yield running


def raw_request(url: str, head: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_roam_serve_writes_only_json_lines(
        roam_serve: tuple[str, subprocess.Popen[str]], tmp_path: Path) -> None:
    url, process = roam_serve
    with httpx.Client(base_url=url) as browser:
        to_login = browser.get(FORGED_PATH)
        page = browser.get(browser.get(to_login.headers["location"]).headers["location"])
        back = browser.post("/login", data={
            "csrf_token": form_field(page.text, "csrf_token"), "r": form_field(page.text, "r"),
            "username": CITIZEN, "password": DEMO_PASSWORD})
        assert back.status_code == 303
        not_found = browser.get(FORGED_PATH, headers={"X-Request-Id": "lb-7f3a:0001"})
        assert not_found.status_code == 404
        # no [gateway] trusted_proxies: a client cannot name its request
        rid = not_found.headers["x-request-id"]
        assert HEX_ID.fullmatch(rid)
    # What a real parser lets through: 8-bit bytes, U+2028 and a C1 CSI in UTF-8 …
    odd = raw_request(url, b"GET /healthz?ticket=ST-secret42 HTTP/1.1\r\nHost: x\r\n"
                           b"User-Agent: caf\xc3\xa9 \xe2\x80\xa8 \xc2\x9b31m\r\n"
                           b"Connection: close\r\n\r\n")
    assert odd.startswith(b"HTTP/1.1 200")
    # … and what it refuses (ANSI escape, CR without LF): answered 400, logged by uvicorn.
    for bad in (b"User-Agent: a\x1b[2J", b"User-Agent: a\rb"):
        answer = raw_request(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + bad
                             + b"\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400")
    process.terminate()
    out, err = process.communicate(timeout=30)
    assert out == ""
    objects = lines_of(err)
    no_line_is_forged(objects)
    assert all("ST-secret42" not in json.dumps(o) for o in objects)
    loggers = {o["logger"] for o in objects}
    assert {"uvicorn.error", "uvicorn.access", "roam.audit"} <= loggers
    [go] = [o for o in objects if o["msg"] == "route.resolve" and o["outcome"] == "failure"]
    assert go["item"] == FORGED_ITEM
    assert go["request_id"] == rid
    access = [o for o in objects if o["logger"] == "uvicorn.access"]
    assert all(HEX_ID.fullmatch(o["request_id"]) for o in access)
    [forged_access] = [o for o in access if o["request_id"] == rid]
    assert forged_access["status"] == 404
    assert forged_access["path"].startswith("/go/x%0a")
    assert any(o["path"] == "/healthz?…" for o in access)
    # the audit trail got the same events, under the same request ids, before it stopped
    [stored] = [e for e in trail_lines(tmp_path / "audit.jsonl")
                if e["action"] == "route.resolve" and e["outcome"] == "failure"]
    assert stored["request_id"] == rid
    assert stored["source"] == "127.0.0.1"
    assert stored["details"]["ref"] == go["ref"]
