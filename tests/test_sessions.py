"""Gateway sessions: opaque cookie, hashed store key, idle and absolute timeouts."""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

from gateway.config import SessionSection
from gateway.identity import Identity, PersonKind
from gateway.sessions import KIND, SessionManager
from gateway.store.memory import MemoryStore

IDENTITY = Identity(subject="c-0001", kind=PersonKind.NATURAL, acr="L2", amr=("pwd",),
                    auth_time=1_000, region="430102", claims={"name": "张三"})


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def request_with(cookie: str | None, name: str = "roam_session") -> Request:
    headers = [(b"cookie", f"{name}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers,
                    "query_string": b""})


def cookie_of(response: Response) -> tuple[str, str]:
    header = response.headers["set-cookie"]
    value = header.split(";")[0].split("=", 1)[1]
    return value, header


def manager(issuer: str = "http://127.0.0.1:8000", *, idle_timeout: int = 1800,
            absolute_timeout: int = 28800) -> tuple[SessionManager, MemoryStore, Clock]:
    clock = Clock()
    store = MemoryStore(clock=clock)
    settings = SessionSection(idle_timeout=idle_timeout, absolute_timeout=absolute_timeout)
    return SessionManager(store, settings, issuer=issuer, clock=clock), store, clock


async def test_cookie_is_opaque_httponly_lax_and_not_secure_on_loopback() -> None:
    sessions, store, _ = manager()
    response = Response()
    session = await sessions.start(IDENTITY, response)
    secret, header = cookie_of(response)
    assert "HttpOnly" in header
    assert "SameSite=lax" in header
    assert "Secure" not in header
    assert secret != session.sid
    # the store holds the secret's digest, never the cookie value itself
    assert await store.find(KIND, secret) is None
    assert await store.find(KIND, hashlib.sha256(secret.encode()).hexdigest()) is not None


async def test_cookie_is_secure_for_https_issuers() -> None:
    sessions, _, _ = manager("https://sso.example.gov.cn")
    response = Response()
    await sessions.start(IDENTITY, response)
    assert "Secure" in cookie_of(response)[1]


async def test_idle_timeout_ends_the_session() -> None:
    sessions, _, clock = manager(idle_timeout=600, absolute_timeout=3600)
    response = Response()
    await sessions.start(IDENTITY, response)
    secret, _ = cookie_of(response)
    clock.now += 300
    assert await sessions.load(request_with(secret)) is not None  # touched: idle restarts
    clock.now += 590
    assert await sessions.load(request_with(secret)) is not None
    clock.now += 601
    assert await sessions.load(request_with(secret)) is None


async def test_absolute_timeout_ends_an_active_session() -> None:
    sessions, _, clock = manager(idle_timeout=600, absolute_timeout=1800)
    response = Response()
    await sessions.start(IDENTITY, response)
    secret, _ = cookie_of(response)
    for _ in range(5):  # active every 5 minutes...
        clock.now += 300
        assert await sessions.load(request_with(secret)) is not None
    clock.now += 301  # ...but 30 minutes after login it ends anyway
    assert await sessions.load(request_with(secret)) is None


async def test_new_login_replaces_the_old_session() -> None:
    sessions, _, _ = manager()
    first = Response()
    await sessions.start(IDENTITY, first)
    old_secret, _ = cookie_of(first)
    second = Response()
    await sessions.start(IDENTITY, second, previous=request_with(old_secret))
    new_secret, _ = cookie_of(second)
    assert new_secret != old_secret
    assert await sessions.load(request_with(old_secret)) is None
    assert await sessions.load(request_with(new_secret)) is not None


async def test_unknown_or_missing_cookie_is_no_session() -> None:
    sessions, _, _ = manager()
    assert await sessions.load(request_with(None)) is None
    assert await sessions.load(request_with("forged-value")) is None


async def test_clients_are_recorded_once() -> None:
    sessions, _, _ = manager()
    response = Response()
    session = await sessions.start(IDENTITY, response)
    secret, _ = cookie_of(response)
    request = request_with(secret)
    await sessions.record_client(request, session, "changsha-gov")
    await sessions.record_client(request, session, "changsha-gov")
    await sessions.record_client(request, session, "yueyang-gov")
    loaded = await sessions.load(request)
    assert loaded is not None
    assert loaded.clients == ["changsha-gov", "yueyang-gov"]
