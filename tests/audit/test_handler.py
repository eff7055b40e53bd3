"""``roam.audit`` records → events: the fields, the request's id and client address, and
which trail takes a record when several run in one process."""

from __future__ import annotations

import gc
import logging
import threading
import weakref
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.audit.handler import AUDIT_LOGGER, AuditHandler, LogEvents, event_of
from gateway.audit.queue import EventQueue
from gateway.audit.record import audit_event
from gateway.logs import RequestIds

audit = logging.getLogger(AUDIT_LOGGER)


def attached() -> tuple[AuditHandler, EventQueue]:
    queue = EventQueue(100, batch_size=10)
    handler = AuditHandler(queue, node="test:1")
    handler.attach()
    return handler, queue


def test_audit_event_names_the_fields_and_keeps_the_rest_as_details() -> None:
    handler, queue = attached()
    try:
        audit_event("login", "locked", subject="13800000001", client="changsha-gov",
                    source="192.0.2.7", retry_after=900, name="张三", module="x")
    finally:
        handler.detach()
    [event] = queue.peek(10)
    assert (event.action, event.outcome, event.subject, event.client, event.source) == (
        "login", "locked", "138****0001", "changsha-gov", "192.0.2.7")
    assert event.node == "test:1"
    assert event.details == {"retry_after": 900, "name_": "张*", "module_": "x"}


def test_a_plain_log_call_is_an_event_too() -> None:
    """What other code logs on roam.audit without audit_event still reaches the trail."""
    handler, queue = attached()
    try:
        audit.warning("instance down %s", "changsha-1", extra={"system": "changsha"})
        try:
            raise RuntimeError("secret details")
        except RuntimeError:
            audit.exception("probe crashed")
    finally:
        handler.detach()
    down, crashed = queue.peek(10)
    assert (down.action, down.outcome, down.system) == ("instance down %s", "failure",
                                                         "changsha")
    assert down.details == {"message": "instance down changsha-1"}
    assert (crashed.action, crashed.outcome) == ("probe crashed", "error")
    assert crashed.details == {"exception": "RuntimeError"}  # the type, never the text


async def test_the_request_id_and_client_address_come_from_the_request() -> None:
    async def endpoint(request: Request) -> Response:
        audit_event("route.resolve", "success", subject="c-0001")
        return PlainTextResponse("ok")

    app = RequestIds(Starlette(routes=[Route("/", endpoint)]), trusted=["127.0.0.0/8"])
    handler, queue = attached()
    try:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            answer = await http.get("/", headers={"X-Forwarded-For": "203.0.113.9"})
    finally:
        handler.detach()
    [event] = queue.peek(10)
    assert event.request_id == answer.headers["x-request-id"]
    assert event.source == "203.0.113.9"  # behind a trusted proxy: the client it forwarded


async def test_a_queued_event_keeps_nothing_of_the_request_alive() -> None:
    """An event waits up to a batch interval: it holds the client's address parts, not
    the request's scope (and through it everything the request touched)."""
    scopes: list[weakref.ref[WeakScope]] = []

    class WeakScope(dict[str, Any]):  # a dict that can be weakly referenced
        pass

    async def endpoint(request: Request) -> Response:
        audit_event("route.resolve", "success", subject="c-0001")
        return PlainTextResponse("ok")

    inner = RequestIds(Starlette(routes=[Route("/", endpoint)]), trusted=["127.0.0.0/8"])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kept = WeakScope(scope)
        scopes.append(weakref.ref(kept))
        await inner(kept, receive, send)

    handler, queue = attached()
    try:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            await http.get("/", headers={"X-Forwarded-For": "198.51.100.4"})
    finally:
        handler.detach()
    gc.collect()
    assert len(queue) == 1
    assert scopes[0]() is None  # gone, while its event is still queued
    [event] = queue.peek(10)
    assert event.source == "198.51.100.4"


def test_a_record_goes_to_the_trail_of_its_own_thread() -> None:
    """Tests serve several gateways in one process, each on a thread of its own."""
    here, here_queue = attached()
    there: list[tuple[AuditHandler, EventQueue]] = []
    ready, done = threading.Event(), threading.Event()

    def other_trail() -> None:
        there.append(attached())
        ready.set()
        audit_event("login", "success", subject="c-there")
        done.wait(10)
        there[0][0].detach()

    thread = threading.Thread(target=other_trail)
    thread.start()
    try:
        ready.wait(10)
        audit_event("login", "success", subject="c-here")
        # a worker thread no trail runs on: every trail gets it
        worker = threading.Thread(target=audit_event, args=("token.issue", "success"))
        worker.start()
        worker.join()
    finally:
        done.set()
        thread.join()
        here.detach()
    assert [e.subject or e.action for e in here_queue.peek(10)] == ["c-here", "token.issue"]
    assert [e.subject or e.action for e in there[0][1].peek(10)] == ["c-there", "token.issue"]


def test_event_of_takes_sub_or_user_as_the_subject() -> None:
    record = audit.makeRecord(AUDIT_LOGGER, logging.INFO, "f", 1, "login", (), None,
                              extra={"user": "138****0001", "client_id": "c"})
    event = event_of(record)
    assert (event.subject, event.client, event.outcome) == ("138****0001", "c", "success")


def test_a_kept_success_is_no_log_line_and_a_kept_failure_names_its_event(
        caplog: pytest.LogCaptureFixture) -> None:
    """The trail is the record of successes (``log_events = "failures"``, the default);
    a failure's log line carries the id of its event, and is not queued a second time."""
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    handler, queue = attached()
    try:
        audit_event("login", "success", subject="c-0001")
        audit_event("login", "failure", user="138****0001", reason="password")
    finally:
        handler.detach()
    kept_success, kept_failure = queue.peek(10)
    assert (kept_success.outcome, kept_failure.outcome) == ("success", "failure")
    [line] = [r for r in caplog.records if r.name == AUDIT_LOGGER]
    assert (line.__dict__["outcome"], line.__dict__["audit_id"]) == ("failure",
                                                                    kept_failure.id)


@pytest.mark.parametrize(("log_events", "lines"), [("all", ["success", "failure"]),
                                                   ("none", [])])
def test_log_events_says_which_kept_events_are_log_lines_too(
        caplog: pytest.LogCaptureFixture, log_events: LogEvents, lines: list[str]) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    queue = EventQueue(100, batch_size=10)
    handler = AuditHandler(queue, node="test:1", log_events=log_events)
    handler.attach()
    try:
        audit_event("token.issue", "success", client="changsha-gov")
        audit_event("token.issue", "failure", client="changsha-gov")
    finally:
        handler.detach()
    assert len(queue) == 2  # the trail keeps both whatever is logged
    logged = [r for r in caplog.records if r.name == AUDIT_LOGGER]
    assert [r.__dict__["outcome"] for r in logged] == lines
    assert all(r.__dict__["audit_id"] in {e.id for e in queue.peek(2)} for r in logged)


def test_with_no_trail_running_every_event_is_a_log_line(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    audit_event("operator.rotation", "success", system="yuelu-bdc")
    [line] = [r for r in caplog.records if r.name == AUDIT_LOGGER]
    assert line.__dict__["system"] == "yuelu-bdc"
    assert "audit_id" not in line.__dict__  # no trail holds it
