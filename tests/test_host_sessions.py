"""Sessions on a proxied system's own host (gateway/host_sessions.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.responses import Response

from gateway.config import SessionSection
from gateway.host_sessions import TOUCH_EVERY, HostSessions, Taken
from gateway.identity import Identity, PersonKind
from gateway.sessions import Session, SessionManager
from gateway.store.base import Kind, Store
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore

IDENTITY = Identity(subject="c-0001", kind=PersonKind.NATURAL, acr="L2", amr=("pwd",),
                    auth_time=1_000, region="430102", claims={"name": "张三"})
STATE = "s" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def parts(store: Store, clock: Clock, *,
          issuer: str = "https://sso.roam.test") -> tuple[SessionManager, HostSessions]:
    settings = SessionSection(idle_timeout=600, absolute_timeout=3600)
    sessions = SessionManager(store, settings, issuer=issuer, clock=clock)
    return sessions, HostSessions(store, sessions, clock=clock)


def jar(hosts: HostSessions, state: str) -> str:
    """The ``Cookie`` header of a browser holding the state cookie of ``state``'s hop."""
    return f"{hosts.state_cookie(state)}={state}" if state else ""


async def take(hosts: HostSessions, code: str, state: str, *, system: str = "gjj",
               host: str = "gjj.roam.test") -> Taken | None:
    return await hosts.take(code, system=system, host=host, cookies=jar(hosts, state))


async def issuer_session(sessions: SessionManager) -> Session:
    return await sessions.start(IDENTITY, Response())


async def host_cookie(hosts: HostSessions, session: Session, system: str = "gjj") -> str:
    """A host session for ``system`` made the whole way; its cookie's value."""
    host = f"{system}.roam.test"
    code = await hosts.hand_over(session, system=system, host=host, state=STATE)
    taken = await take(hosts, code, STATE, system=system, host=host)
    assert taken is not None
    return taken.cookie


async def test_a_code_becomes_a_host_session_for_its_system_only() -> None:
    clock = Clock()
    sessions, hosts = parts(MemoryStore(), clock)
    session = await issuer_session(sessions)
    code = await hosts.hand_over(session, system="gjj", host="gjj.roam.test", state=STATE)
    taken = await take(hosts, code, STATE)
    assert taken is not None
    made, value, state = taken
    assert state == STATE
    assert (made.sid, made.system, made.identity.subject) == (session.sid, "gjj", "c-0001")
    assert await hosts.load(value, system="gjj") is not None
    assert await hosts.load(value, system="shebao") is None, "another system's host"
    assert await hosts.load(value.partition(".")[0] + ".wrong", system="gjj") is None
    assert await take(hosts, code, STATE) is None


async def test_a_new_hand_over_replaces_the_host_session_of_its_system() -> None:
    """A browser back without its host cookie (or looping the hop) keeps one host session
    per system, not one per hop: the newest secret is the one that works."""
    store = MemoryStore()
    sessions, hosts = parts(store, Clock())
    session = await issuer_session(sessions)
    first = await host_cookie(hosts, session)
    second = await host_cookie(hosts, session)
    assert first.partition(".")[0] == second.partition(".")[0]
    assert await hosts.load(second, system="gjj") is not None
    assert await hosts.load(first, system="gjj") is None
    found = await store.find_by_grant(f"sid:{session.sid}")
    assert [kind for kind, _, _ in found] == [Kind.HOST_SESSION]


@pytest.mark.parametrize(("system", "host", "state"), [
    ("shebao", "gjj.roam.test", STATE),  # another system
    ("gjj", "evil.roam.test", STATE),  # another host
    ("gjj", "gjj.roam.test", "t" * 32),  # another browser's state
    ("gjj", "gjj.roam.test", ""),  # no state cookie
])
async def test_a_code_is_refused_anywhere_but_where_it_was_made_for(system: str, host: str,
                                                                    state: str) -> None:
    sessions, hosts = parts(MemoryStore(), Clock())
    session = await issuer_session(sessions)
    code = await hosts.hand_over(session, system="gjj", host="gjj.roam.test", state=STATE)
    assert await take(hosts, code, state, system=system, host=host) is None
    # a wrong try changes nothing: the browser the code was made for still gets in, once
    assert await take(hosts, code, STATE) is not None
    assert await take(hosts, code, STATE) is None


async def test_a_code_of_an_ended_issuer_session_makes_nothing() -> None:
    sessions, hosts = parts(MemoryStore(), Clock())
    session = await issuer_session(sessions)
    code = await hosts.hand_over(session, system="gjj", host="gjj.roam.test", state=STATE)
    await sessions.destroy(session.sid)
    assert await take(hosts, code, STATE) is None


async def test_ending_the_issuer_session_ends_its_host_sessions() -> None:
    store = MemoryStore()
    sessions, hosts = parts(store, Clock())
    session = await issuer_session(sessions)
    values = [(system, await host_cookie(hosts, session, system))
              for system in ("gjj", "shebao")]
    await sessions.destroy(session.sid)  # what every logout does last
    for system, value in values:
        assert await hosts.load(value, system=system) is None
    assert await sessions.links(session.sid) == [], "host sessions are not RP links"


async def test_a_host_session_keeps_the_issuer_sessions_timeouts() -> None:
    clock = Clock()
    sessions, hosts = parts(MemoryStore(), clock)
    value = await host_cookie(hosts, await issuer_session(sessions))
    for _ in range(6):  # active every 9 minutes: the idle timer restarts each time
        clock.now += 540
        assert await hosts.load(value, system="gjj") is not None
    clock.now = 1_000 + 3600  # the issuer session's absolute end
    assert await hosts.load(value, system="gjj") is None
    clock2 = Clock()
    sessions2, hosts2 = parts(MemoryStore(), clock2)
    value2 = await host_cookie(hosts2, await issuer_session(sessions2))
    clock2.now += 601  # idle longer than idle_timeout
    assert await hosts2.load(value2, system="gjj") is None


async def test_the_cookies_are_host_only_and_host_prefixed_under_https() -> None:
    _, hosts = parts(MemoryStore(), Clock())
    response = Response()
    hosts.set_cookie(response, "a.b")
    hosts.set_state(response, STATE)
    hosts.set_state(response, "t" * 32)  # a second hop at once (another tab): its own cookie
    cookies = response.headers.getlist("set-cookie")
    assert cookies[0].startswith("__Host-roam_host=a.b;")
    assert cookies[1].startswith(f"__Host-roam_state-ssssssss={STATE};")
    assert cookies[2].startswith(f"__Host-roam_state-tttttttt={'t' * 32};")
    for cookie in cookies:
        assert "Domain" not in cookie
        assert {"Path=/", "Secure", "HttpOnly"} <= {a.strip() for a in cookie.split(";")}
    _, plain = parts(MemoryStore(), Clock(), issuer="http://127.0.0.1:8000")
    assert plain.cookie_name == "roam_host"  # loopback http (the demo): no prefix possible


@pytest.fixture
async def two_processes(redis_url: str, redis_prefix: str) -> AsyncIterator[tuple[Store, Store]]:
    first = RedisStore.from_url(redis_url, prefix=redis_prefix)
    second = RedisStore.from_url(redis_url, prefix=redis_prefix)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_a_code_is_taken_once_across_processes(two_processes: tuple[Store, Store]) -> None:
    first, second = two_processes
    clock = Clock()
    sessions, hosts = parts(first, clock)
    _, other = parts(second, clock)
    session = await issuer_session(sessions)
    for _ in range(20):
        code = await hosts.hand_over(session, system="gjj", host="gjj.roam.test", state=STATE)
        tries = [take(taker, code, STATE)
                 for taker in (hosts, other) * 4]
        results = await asyncio.gather(*tries)
        assert sum(r is not None for r in results) == 1
    # one host session per issuer session and system, whatever number of hand-overs
    found = await first.find_by_grant(f"sid:{session.sid}")
    assert sum(kind == Kind.HOST_SESSION for kind, _, _ in found) == 1


async def test_work_on_a_systems_host_keeps_the_issuer_session_alive() -> None:
    clock = Clock()
    sessions, hosts = parts(MemoryStore(), clock)  # idle_timeout 600
    session = await issuer_session(sessions)
    value = await host_cookie(hosts, session)
    for _ in range(8):  # 40 minutes of work on the system's host only
        clock.now += 300
        assert await hosts.load(value, system="gjj") is not None
    assert await sessions.find(session.sid) is not None, "one idle clock for both"


async def test_a_host_session_ends_when_its_issuer_session_ran_out() -> None:
    """An issuer session that ran out is removed alone (no group revoke reaches its host
    sessions): the host session must notice, not serve the next person at that kiosk."""
    clock = Clock()
    store = MemoryStore()
    sessions, hosts = parts(store, clock)
    session = await issuer_session(sessions)
    value = await host_cookie(hosts, session)
    await store.destroy(Kind.SESSION, session.sid)  # what an idle expiry does
    clock.now += TOUCH_EVERY
    assert await hosts.load(value, system="gjj") is None
    assert [k for k, _, _ in await store.find_by_grant(f"sid:{session.sid}")] == []


class LogoutDuringHandOver(MemoryStore):
    """The interleaving a race can produce: the logout's group revoke runs after the
    hand-over looked the issuer session up and before it wrote the host session."""

    sessions: SessionManager | None = None

    async def upsert(self, kind: str, id: str, payload: Any, ttl: int, *,
                     version: str = "") -> None:
        if kind == Kind.HOST_SESSION and self.sessions is not None:
            sessions, self.sessions = self.sessions, None
            await sessions.destroy(str(payload["sid"]))
        await super().upsert(kind, id, payload, ttl, version=version)


async def test_a_logout_racing_a_hand_over_leaves_no_host_session() -> None:
    store = LogoutDuringHandOver()
    sessions, hosts = parts(store, Clock())
    session = await issuer_session(sessions)
    code = await hosts.hand_over(session, system="gjj", host="gjj.roam.test", state=STATE)
    store.sessions = sessions
    assert await take(hosts, code, STATE) is None
    assert await store.find_by_grant(f"sid:{session.sid}") == []


async def test_a_host_session_ends_only_with_its_secret() -> None:
    sessions, hosts = parts(MemoryStore(), Clock())
    value = await host_cookie(hosts, await issuer_session(sessions))
    await hosts.end(value.partition(".")[0] + ".guessed", system="gjj")
    await hosts.end(value, system="shebao")
    assert await hosts.load(value, system="gjj") is not None
    await hosts.end(value, system="gjj")
    assert await hosts.load(value, system="gjj") is None
