"""The gate every way into a system passes (gateway/legacy/access.py)."""

from __future__ import annotations

import time

from starlette.responses import Response

from gateway.assurance import level_of
from gateway.config import SessionSection, SystemConfig
from gateway.cookies import cookie_value
from gateway.identity import Identity, PersonKind
from gateway.legacy.access import Gate, Refusal
from gateway.login.directory import TomlDirectory
from gateway.sessions import SessionManager
from gateway.store.memory import MemoryStore
from tests.support.gateway import DEMO_PASSWORD, REPO


def system(min_acr: str) -> SystemConfig:
    return SystemConfig.model_validate({
        "id": "sys", "name": "系统", "region": "430100", "level": "prefecture",
        "instances": ["https://sys.example.gov.cn"], "connector": "cas", "items": ["A-1"],
        "min_acr": min_acr})


async def session_cookie(sessions: SessionManager, acr: str) -> str:
    identity = Identity(subject="c-0001", kind=PersonKind.NATURAL, acr=acr, amr=("pwd",),
                        auth_time=int(time.time()), region="430102")
    response = Response()
    await sessions.start(identity, response)
    header = response.headers["set-cookie"].split(";", 1)[0]
    return cookie_value(header, sessions.cookie_name)


async def test_no_session_logs_in_a_low_one_steps_up_an_equal_one_enters() -> None:
    sessions = SessionManager(MemoryStore(), SessionSection(), issuer="http://127.0.0.1:8000")
    gate = Gate(sessions)
    assert await gate.enter("", system("L1")) == Refusal("login")
    assert await gate.enter("sid.wrong-secret", system("L1")) == Refusal("login")
    cookie = await session_cookie(sessions, "L2")
    assert await gate.enter(cookie, system("L3")) == Refusal("stepup", "L3")
    entered = await gate.enter(cookie, system("L2"))
    assert not isinstance(entered, Refusal)
    assert entered.identity.acr == "L2"
    assert await gate.enter(cookie, system("L1"), renew=True) == Refusal("login")


async def test_the_gate_asks_what_this_login_did_not_what_the_account_is() -> None:
    """An account verified to L3 logged in with a password is at L2: an L3 system steps it
    up (the face check), it does not let it in on the account's level."""
    sessions = SessionManager(MemoryStore(), SessionSection(), issuer="http://127.0.0.1:8000")
    gate = Gate(sessions)
    directory = TomlDirectory.from_file(REPO / "config" / "directory.toml")
    identity = await directory.authenticate("13900000002", DEMO_PASSWORD)  # c-0002, L3
    response = Response()
    session = await sessions.start(identity, response)
    cookie = cookie_value(response.headers["set-cookie"].split(";", 1)[0], sessions.cookie_name)
    assert await gate.enter(cookie, system("L3")) == Refusal("stepup", "L3")
    assert not isinstance(await gate.enter(cookie, system("L2")), Refusal)
    amr = (*identity.amr, "face")
    stepped = identity.with_auth(acr=level_of(amr, identity.verified_level), amr=amr,
                                 auth_time=identity.auth_time)
    raised = Response()
    await sessions.elevate(session, stepped, raised)
    cookie = cookie_value(raised.headers["set-cookie"].split(";", 1)[0], sessions.cookie_name)
    entered = await gate.enter(cookie, system("L3"))
    assert not isinstance(entered, Refusal)
    assert (entered.identity.acr, entered.identity.amr) == ("L3", ("pwd", "face"))


def test_refusals_send_people_to_login_or_step_up_and_back() -> None:
    sessions = SessionManager(MemoryStore(), SessionSection(), issuer="http://127.0.0.1:8000")
    gate = Gate(sessions)
    back = "/s/sys/a?b=1&c=中"
    assert gate.where(Refusal("login"), back) == (
        "/login?next=%2Fs%2Fsys%2Fa%3Fb%3D1%26c%3D%E4%B8%AD")
    assert gate.where(Refusal("stepup", "L3"), back) == (
        "/stepup?next=%2Fs%2Fsys%2Fa%3Fb%3D1%26c%3D%E4%B8%AD&acr=L3")
    elsewhere = gate.where(Refusal("login"), "https://gjj.sso.test/x", gateway="https://sso.test")
    assert elsewhere == "https://sso.test/login?next=https%3A%2F%2Fgjj.sso.test%2Fx"
    redirect = gate.redirect(Refusal("stepup", "L2"), "/go/A-1")
    assert redirect.status_code == 303
    assert redirect.headers["location"] == "/stepup?next=%2Fgo%2FA-1&acr=L2"
    assert redirect.headers["cache-control"] == "no-store"
