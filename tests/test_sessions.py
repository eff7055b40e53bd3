"""Gateway sessions: opaque cookie, hashed store key, idle and absolute timeouts."""

from __future__ import annotations

import hashlib

import pytest
from starlette.requests import Request
from starlette.responses import Response

from gateway import sessions as sessions_module
from gateway.config import SessionSection
from gateway.identity import Identity, PersonKind
from gateway.sessions import SessionManager
from gateway.store.base import Kind
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
    """The cookie value and the whole Set-Cookie header."""
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
    cookie, header = cookie_of(response)
    assert "HttpOnly" in header
    assert "SameSite=lax" in header
    assert "Secure" not in header
    sid, _, secret = cookie.partition(".")
    assert sid == session.sid
    assert secret
    # the store keeps the secret's digest, never the secret itself
    record = await store.find(Kind.SESSION, sid)
    assert record is not None
    assert secret not in str(record)
    assert record["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()


async def test_a_guessed_secret_for_a_known_sid_is_refused() -> None:
    sessions, _, _ = manager()
    response = Response()
    session = await sessions.start(IDENTITY, response)
    assert await sessions.load(request_with(f"{session.sid}.not-the-secret")) is None
    assert await sessions.load(request_with(cookie_of(response)[0])) is not None


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


async def test_login_again_keeps_the_sid_and_rotates_the_secret() -> None:
    sessions, _, clock = manager()
    first = Response()
    session = await sessions.start(IDENTITY, first)
    old_cookie, _ = cookie_of(first)
    clock.now += 100
    second = Response()
    again = await sessions.start(IDENTITY.with_auth(acr="L2", amr=("pwd",), auth_time=1100),
                                 second, current=session)
    new_cookie, _ = cookie_of(second)
    assert again.sid == session.sid
    assert new_cookie != old_cookie
    assert await sessions.load(request_with(old_cookie)) is None
    loaded = await sessions.load(request_with(new_cookie))
    assert loaded is not None
    assert loaded.identity.auth_time == 1100


async def test_someone_else_gets_a_new_session() -> None:
    sessions, _, _ = manager()
    first = Response()
    session = await sessions.start(IDENTITY, first)
    other = Identity(subject="c-0002", kind=PersonKind.NATURAL, acr="L3", amr=("pwd",),
                     auth_time=1_000, region="430104")
    second = Response()
    new = await sessions.start(other, second, current=session)
    assert new.sid != session.sid


async def test_elevate_keeps_sid_and_creation_time() -> None:
    sessions, _, clock = manager()
    first = Response()
    session = await sessions.start(IDENTITY, first)
    clock.now += 60
    raised = await sessions.elevate(
        session, IDENTITY.with_auth(acr="L3", amr=("pwd", "face"), auth_time=1060), Response())
    assert raised.sid == session.sid
    assert raised.created == session.created
    assert raised.identity.acr == "L3"
    assert await sessions.load(request_with(cookie_of(first)[0])) is None  # old secret dead


async def test_unknown_or_missing_cookie_is_no_session() -> None:
    sessions, _, _ = manager()
    assert await sessions.load(request_with(None)) is None
    assert await sessions.load(request_with("forged-value")) is None
    assert await sessions.load(request_with("forged.value")) is None


async def test_links_list_every_rp_authorization_of_the_session() -> None:
    sessions, _store, clock = manager()
    response = Response()
    session = await sessions.start(IDENTITY, response)
    until = sessions.deadline(session)
    assert await sessions.swap_link(session.sid, "changsha-gov", "g1", offline=False,
                                    until=until, expected=None)
    clock.now += 1
    assert await sessions.swap_link(session.sid, "yueyang-gov", "g2", offline=True,
                                    until=until, expected=None)
    links = await sessions.links(session.sid)
    assert [(x.client_id, x.grant_id, x.offline, x.until) for x in links] == [
        ("changsha-gov", "g1", False, until), ("yueyang-gov", "g2", True, until)]
    found = await sessions.find_link(session.sid, "yueyang-gov", offline=True)
    assert found is not None
    assert found.grant_id == "g2"
    assert await sessions.find_link(session.sid, "yueyang-gov", offline=False) is None
    assert [s.sid for s in await sessions.sessions_of("c-0001")] == [session.sid]
    await sessions.destroy(session.sid)
    assert await sessions.links(session.sid) == []
    assert await sessions.sessions_of("c-0001") == []


async def test_a_link_moves_only_from_the_grant_it_was_read_with() -> None:
    """Two authorizations racing to name a new grant for one client: one wins, the other
    learns it lost (and uses the winner's); the link lives as long as the session can."""
    sessions, _store, clock = manager()
    session = await sessions.start(IDENTITY, Response())
    until = sessions.deadline(session)
    assert await sessions.swap_link(session.sid, "changsha-gov", "g1", offline=False,
                                    until=until, expected=None)
    assert not await sessions.swap_link(session.sid, "changsha-gov", "g2", offline=False,
                                        until=until, expected=None)
    assert await sessions.swap_link(session.sid, "changsha-gov", "g2", offline=False,
                                    until=until, expected="g1")
    assert not await sessions.swap_link(session.sid, "changsha-gov", "g3", offline=False,
                                        until=until, expected="g1")
    links = await sessions.links(session.sid)
    assert [x.grant_id for x in links] == ["g2"]
    clock.now = until + 1
    assert await sessions.find_link(session.sid, "changsha-gov", offline=False) is None


async def test_decoding_is_remembered_but_every_change_is_seen_at_once() -> None:
    """The session is read from the store on every load; only its decoding is remembered,
    by the stored text: a logout or a new login takes effect on the very next request."""
    sessions, _store, clock = manager()
    response = Response()
    await sessions.start(IDENTITY, response)
    cookie, _ = cookie_of(response)
    first = await sessions.load(request_with(cookie))
    second = await sessions.load(request_with(cookie))
    assert first is not None
    assert second is first

    clock.now += 10  # the idle timer is written again: a new text, a new session value
    touched = await sessions.load(request_with(cookie))
    assert touched is not None
    assert touched is not first
    assert touched.last_seen == 1_010
    assert first.last_seen == 1_000

    again = Response()
    await sessions.start(IDENTITY.with_auth(acr="L3", amr=("pwd", "otp"), auth_time=1_010),
                         again, current=touched)
    assert await sessions.load(request_with(cookie)) is None  # the old secret is gone
    renewed, _ = cookie_of(again)
    loaded = await sessions.load(request_with(renewed))
    assert loaded is not None
    assert loaded.identity.acr == "L3"

    await sessions.destroy(loaded.sid)  # logout
    assert await sessions.load(request_with(renewed)) is None


async def test_remembered_decodings_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions_module, "DECODED_KEPT", 3)
    sessions, _, _ = manager()
    cookies = []
    for _ in range(5):
        response = Response()
        await sessions.start(IDENTITY, response)
        cookies.append(cookie_of(response)[0])
    for cookie in cookies:
        assert await sessions.load(request_with(cookie)) is not None
    assert len(sessions._decoded) == 3
