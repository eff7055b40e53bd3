"""gateway/ops/console_sessions.py: operators' sessions time out after 15 idle minutes,
end at the absolute limit, and share nothing with citizens' sessions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.ops.console_sessions import ConsoleSessions
from gateway.ops.operators import Operator, Role
from gateway.store.memory import MemoryStore
from tests.support.clock import Clock

OPERATOR = Operator("ops-demo", Role.OPERATOR, "$argon2id$unused", "unused")


def request_with(cookie: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/ops", "query_string": b"",
                    "headers": [(b"cookie", cookie.encode())]})


def set_cookie(response: Response) -> str:
    header = response.headers["set-cookie"]
    assert "HttpOnly" in header
    assert "SameSite=strict" in header
    return header.split(";")[0]


def sessions(clock: Clock, *, secure: bool = False) -> ConsoleSessions:
    return ConsoleSessions(MemoryStore(clock=clock), secure=secure, idle_timeout=900,
                           absolute_timeout=3600, clock=clock)


async def test_fifteen_idle_minutes_end_the_session() -> None:
    clock = Clock()
    console = sessions(clock)
    response = Response()
    await console.start(OPERATOR, response)
    cookie = set_cookie(response)
    clock.advance(899)
    found = await console.load(request_with(cookie))
    assert found is not None
    assert found.may_change
    clock.advance(899)  # used 899 s ago: still there, its idle clock restarted
    assert await console.load(request_with(cookie)) is not None
    clock.advance(901)
    assert await console.load(request_with(cookie)) is None


async def test_activity_does_not_stretch_past_the_absolute_limit() -> None:
    clock = Clock()
    console = sessions(clock)
    response = Response()
    await console.start(OPERATOR, response)
    cookie = set_cookie(response)
    for _ in range(4):  # busy for an hour, never idle
        clock.advance(899)
        assert await console.load(request_with(cookie)) is not None
    clock.advance(60)
    assert await console.load(request_with(cookie)) is None


async def test_a_wrong_secret_or_a_citizens_cookie_is_no_session() -> None:
    clock = Clock()
    console = sessions(clock, secure=True)
    response = Response()
    await console.start(OPERATOR, response)
    cookie = set_cookie(response)
    assert cookie.startswith("__Host-roam_ops=")
    sid = cookie.split("=", 1)[1].split(".")[0]
    assert await console.load(request_with(f"__Host-roam_ops={sid}.forged")) is None
    assert await console.load(request_with(cookie.replace("__Host-roam_ops",
                                                          "__Host-roam_session"))) is None
    assert await console.load(request_with(cookie)) is not None
    ended = Response()
    found = await console.load(request_with(cookie))
    assert found is not None
    await console.end(found, ended)
    assert await console.load(request_with(cookie)) is None
