"""Step-up: a session below the requested level does only the missing factor, keeps its sid.

The flow tests drive a real gateway over HTTP with an httpx client as the browser and
redeem codes with authlib's OAuth 2 client, as tests/oidc/test_flow.py does; the factor
tests at the end pin the store-level rules (hash only, single use, tries, expiry). After
a password the only factor that raises a session is the face check (a password is L2
already), so the SMS code's rules are pinned on the factor itself.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.assurance import level_of
from gateway.errors import LockedOut, LoginError
from gateway.identity import Identity, PersonKind
from gateway.login.factors import SimulatedFace, SimulatedSms
from gateway.login.stepup import StepUpPages
from gateway.sessions import Session
from gateway.store import RedisStore
from gateway.store.base import Kind
from gateway.store.memory import MemoryStore
from tests.support.audit import audited
from tests.support.gateway import DEMO_PASSWORD, config_on_port, form_field, query
from tests.support.rp import authorize_url, rp_client, validate_id_token
from tests.support.servers import free_port, serve

# config/directory.toml; a password alone reaches L2 at most, and never the verified level
VERIFIED_L1 = "15000000003"  # c-0003: a password session is L1, and nothing raises it
VERIFIED_L2 = "13800000004"  # c-0004: a password session is L2, as far as it goes
VERIFIED_L3 = "13800000001"  # c-0001: a password session is L2, the face check makes it L3
ALSO_L3 = "13900000002"  # c-0002, verified L3 too
CALLBACK = "http://127.0.0.1:8001/callback"


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    port = free_port()
    config = config_on_port(port)
    assert config.settings.login.simulated_step_up, "config/roam.toml enables the demo factors"
    with serve(create_app(config, store=MemoryStore()), port) as url:
        yield url


@pytest.fixture
def browser(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, follow_redirects=False) as client:
        yield client


# --- walking the pages like a browser ---------------------------------------------------


def walk(browser: httpx.Client, response: httpx.Response) -> httpx.Response:
    """Follow the gateway's own redirects; stop at a page or a redirect to the RP."""
    while response.status_code in (302, 303) and response.headers["location"].startswith("/"):
        response = browser.get(response.headers["location"])
    return response


def log_in(browser: httpx.Client, url: str, username: str) -> httpx.Response:
    """Start at the RP's authorization URL, pass the login page; where the walk ends."""
    page = walk(browser, browser.get(url))
    assert 'id="login-submit"' in page.text, page.text
    response = browser.post("/login", data={
        "csrf_token": form_field(page.text, "csrf_token"),
        "r": form_field(page.text, "r"),
        "username": username,
        "password": DEMO_PASSWORD,
    })
    assert response.status_code == 303, response.text
    return walk(browser, response)


def submit(browser: httpx.Client, page: httpx.Response, **fields: str) -> httpx.Response:
    """Post the step-up form on ``page`` with the factor's own ``fields``."""
    data = {name: form_field(page.text, name) for name in ("csrf_token", "r", "factor")}
    return browser.post("/stepup", data={**data, **fields})


def demo_code(page: httpx.Response) -> str:
    match = re.search(r'id="demo-code">([0-9]{6})<', page.text)
    assert match, "no demo code on the page"
    return match.group(1)


def is_sms_page(page: httpx.Response) -> bool:
    return page.status_code == 200 and 'id="otp"' in page.text


def is_face_page(page: httpx.Response) -> bool:
    return page.status_code == 200 and 'id="face-start"' in page.text


def at_rp(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(CALLBACK), location
    return query(location)


class Rp:
    """changsha-gov, as authlib's client, with one authorization request in flight."""

    def __init__(self, gateway_url: str, **params: str) -> None:
        self.gateway_url = gateway_url
        self.client = rp_client("changsha-gov", gateway_url)
        self.nonce = secrets.token_urlsafe(12)
        self.url, self.verifier = authorize_url(self.client, gateway_url, nonce=self.nonce,
                                                **params)

    def id_token(self, response: httpx.Response) -> dict[str, Any]:
        """Redeem the code the gateway sent back and validate the ID token."""
        at_rp(response)
        token = self.client.fetch_token(f"{self.gateway_url}/token",
                                        authorization_response=response.headers["location"],
                                        code_verifier=self.verifier)
        return validate_id_token(self.gateway_url, token["id_token"], "changsha-gov",
                                 self.nonce, token["access_token"])


# --- flows -------------------------------------------------------------------------------


def test_password_session_steps_up_to_l3_with_face_and_keeps_its_sid(
        gateway_url: str, browser: httpx.Client) -> None:
    before = Rp(gateway_url)
    first = before.id_token(log_in(browser, before.url, VERIFIED_L3))
    assert (first["acr"], first["amr"]) == ("L2", ["pwd"])  # a password alone: L2

    rp = Rp(gateway_url, acr_values="L3", state="deep-link")
    page = walk(browser, browser.get(rp.url))  # a session exists: no login page
    assert is_face_page(page), page.text
    assert "长沙市政务服务" in page.text
    assert "该事项需要 L3 实人认证" in page.text
    assert "演示" in page.text
    response = submit(browser, page, challenge=form_field(page.text, "challenge"))
    assert response.status_code == 303
    assert response.headers["location"].startswith("/stepup?r=")
    done = walk(browser, response)
    assert at_rp(done)["state"] == "deep-link"
    claims = rp.id_token(done)
    assert claims["sub"] == "c-0001"
    assert claims["acr"] == "L3"
    assert claims["amr"] == ["pwd", "face"]
    assert claims["sid"] == first["sid"]
    assert claims["auth_time"] == first["auth_time"], "auth_time stays the password's"


@pytest.mark.parametrize(("username", "verified", "asked"), [
    (VERIFIED_L1, "L1", "L2"), (VERIFIED_L1, "L1", "L3"), (VERIFIED_L2, "L2", "L3")])
def test_no_factor_lifts_a_session_above_the_accounts_verified_level(
        gateway_url: str, browser: httpx.Client, caplog: pytest.LogCaptureFixture,
        username: str, verified: str, asked: str) -> None:
    """An SMS code or a face check is no proofing: above the verified level is unmet."""
    caplog.set_level(logging.INFO)
    rp = Rp(gateway_url, acr_values=asked, state="s-unmet")
    params = at_rp(log_in(browser, rp.url, username))  # no step-up page is shown at all
    assert params["error"] == "unmet_authentication_requirements"
    assert params["error_description"] == (
        f"The account is verified only to {verified}; the request needs {asked}.")
    assert params["state"] == "s-unmet"
    assert "code" not in params
    assert any(getattr(r, "verified", None) == verified and getattr(r, "needed", None) == asked
               for r in audited(caplog.records, "stepup", "denied"))


def test_an_unmet_deep_link_says_the_account_needs_verifying(gateway_url: str,
                                                             browser: httpx.Client) -> None:
    log_in(browser, Rp(gateway_url).url, VERIFIED_L2)
    page = walk(browser, browser.get("/stepup", params={"next": "/my/logins", "acr": "L3"}))
    assert page.status_code == 403
    assert "该业务需要 L3 实人认证" in page.text
    assert "您的账户目前核验到 L2 实名认证" in page.text


def test_a_step_up_is_no_fresh_login(gateway_url: str, browser: httpx.Client) -> None:
    """prompt=login asks for the password again: the step-up page sends there first, and
    a face check posted without it changes nothing."""
    first = Rp(gateway_url)
    first.id_token(log_in(browser, first.url, VERIFIED_L3))  # an L2 session
    rp = Rp(gateway_url, acr_values="L3", prompt="login")
    parked = browser.get(rp.url)
    assert parked.headers["location"].startswith("/login?r=")
    pending = parked.headers["location"].removeprefix("/login?r=")
    # Skipping the login page for the step-up page does not skip the login.
    response = browser.get(f"/stepup?r={pending}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?r={pending}"
    face = walk(browser, browser.get(Rp(gateway_url, acr_values="L3").url))  # another request
    assert is_face_page(face)
    posted = browser.post("/stepup", data={
        "csrf_token": form_field(face.text, "csrf_token"), "r": pending, "factor": "face",
        "challenge": form_field(face.text, "challenge")})
    assert posted.headers["location"] == f"/login?r={pending}"
    # The password, then the face check: now the request is answered.
    page = walk(browser, posted)
    assert 'id="login-submit"' in page.text
    stepped = walk(browser, browser.post("/login", data={
        "csrf_token": form_field(page.text, "csrf_token"), "r": pending,
        "username": VERIFIED_L3, "password": DEMO_PASSWORD}))
    assert is_face_page(stepped), stepped.text
    done = walk(browser, submit(browser, stepped, challenge=form_field(stepped.text,
                                                                       "challenge")))
    claims = rp.id_token(done)
    assert (claims["acr"], claims["amr"]) == ("L3", ["pwd", "face"])


def test_max_age_is_met_by_the_password_not_by_a_step_up(gateway_url: str,
                                                          browser: httpx.Client) -> None:
    first = Rp(gateway_url)
    first.id_token(log_in(browser, first.url, VERIFIED_L3))
    rp = Rp(gateway_url, acr_values="L3", max_age="0")
    parked = browser.get(rp.url)
    pending = parked.headers["location"].removeprefix("/login?r=")
    assert browser.get(f"/stepup?r={pending}").headers["location"] == f"/login?r={pending}"
    page = walk(browser, parked)
    stepped = walk(browser, browser.post("/login", data={
        "csrf_token": form_field(page.text, "csrf_token"), "r": pending,
        "username": VERIFIED_L3, "password": DEMO_PASSWORD}))
    claims = rp.id_token(walk(browser, submit(browser, stepped,
                                              challenge=form_field(stepped.text, "challenge"))))
    assert (claims["acr"], claims["amr"]) == ("L3", ["pwd", "face"])


def test_face_challenge_passes_once_under_concurrent_posts(gateway_url: str,
                                                           browser: httpx.Client) -> None:
    log_in(browser, Rp(gateway_url).url, VERIFIED_L3)
    page = walk(browser, browser.get(Rp(gateway_url, acr_values="L3").url))
    assert is_face_page(page)
    data = {name: form_field(page.text, name)
            for name in ("csrf_token", "r", "factor", "challenge")}

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=str(browser.base_url), cookies=browser.cookies) as twin:
            return twin.post("/stepup", data=data)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(post, range(8)))
    passed = [r for r in responses if r.status_code == 303
              and r.headers["location"].startswith("/stepup?r=")]
    assert len(passed) == 1


def test_face_challenge_of_another_session_is_refused(gateway_url: str,
                                                      browser: httpx.Client) -> None:
    log_in(browser, Rp(gateway_url).url, VERIFIED_L3)
    page = walk(browser, browser.get(Rp(gateway_url, acr_values="L3").url))
    with httpx.Client(base_url=str(browser.base_url), follow_redirects=False) as other:
        log_in(other, Rp(gateway_url).url, VERIFIED_L3)
        own = walk(other, other.get(Rp(gateway_url, acr_values="L3").url))
        stolen = submit(other, own, challenge=form_field(page.text, "challenge"))
    assert stolen.status_code == 401
    assert 'role="alert"' in stolen.text
    assert "已失效或已使用" in stolen.text
    # the attempt neither passed nor spent the victim's challenge
    done = walk(browser, submit(browser, page, challenge=form_field(page.text, "challenge")))
    assert at_rp(done)["code"]


def test_l4_is_unmet_and_goes_back_to_the_rp(gateway_url: str, browser: httpx.Client) -> None:
    rp = Rp(gateway_url, acr_values="L4", state="s-l4")
    params = at_rp(log_in(browser, rp.url, VERIFIED_L3))
    assert params["error"] == "unmet_authentication_requirements"
    assert params["state"] == "s-l4"
    assert params["iss"] == gateway_url
    assert "code" not in params


def test_a_password_session_meets_l2_with_no_step_up(gateway_url: str,
                                                     browser: httpx.Client) -> None:
    rp = Rp(gateway_url, acr_values="L2")
    done = log_in(browser, rp.url, ALSO_L3)  # straight back to the RP, no step-up page
    claims = rp.id_token(done)
    assert (claims["acr"], claims["amr"]) == ("L2", ["pwd"])  # not the account's L3
    again = Rp(gateway_url, acr_values="L2")
    assert again.id_token(browser.get(again.url))["acr"] == "L2"


def test_post_without_csrf_token_is_an_error_page(gateway_url: str,
                                                  browser: httpx.Client) -> None:
    page = log_in(browser, Rp(gateway_url, acr_values="L3").url, VERIFIED_L3)
    assert is_face_page(page)
    response = browser.post("/stepup", data={"r": form_field(page.text, "r"), "factor": "face",
                                             "challenge": form_field(page.text, "challenge")})
    assert response.status_code == 400
    assert 'id="ref"' in response.text
    assert "页面已过期" in response.text
    # nothing changed: the challenge still works from the real page
    assert at_rp(walk(browser, submit(browser, page,
                                      challenge=form_field(page.text, "challenge"))))["code"]


def test_without_a_session_the_step_up_page_sends_to_login(gateway_url: str,
                                                           browser: httpx.Client) -> None:
    page = log_in(browser, Rp(gateway_url, acr_values="L3").url, VERIFIED_L3)
    pending = form_field(page.text, "r")
    with httpx.Client(base_url=str(browser.base_url), follow_redirects=False) as stranger:
        response = stranger.get(f"/stepup?r={pending}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?r={pending}"


def test_unknown_request_id_is_an_error_page(browser: httpx.Client) -> None:
    response = browser.get("/stepup?r=nope")
    assert response.status_code == 400
    assert "登录请求已失效" in response.text


def test_form_of_another_factor_shows_the_current_step(gateway_url: str,
                                                        browser: httpx.Client) -> None:
    face = log_in(browser, Rp(gateway_url, acr_values="L3").url, VERIFIED_L3)
    assert is_face_page(face)
    stale = submit(browser, face, factor="sms", otp="123456")  # back button + resubmit
    assert stale.status_code == 303
    assert stale.headers["location"] == f"/stepup?r={form_field(face.text, 'r')}"
    assert is_face_page(walk(browser, stale))


# --- the factors on their own ------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def session(phone: str = VERIFIED_L1, sid: str = "sid-1", subject: str = "c-0003") -> Session:
    """A mini-program (channel) session of a real-name account: what an SMS code raises."""
    identity = Identity(subject=subject, kind=PersonKind.NATURAL, acr="L1", amr=("wechat",),
                        auth_time=1, region="430602",
                        claims={"phone_number": phone, "verified_level": "L2"})
    return Session(sid=sid, identity=identity, created=1, last_seen=1)


def sms(clock: Clock | None = None, **limits: int) -> tuple[SimulatedSms, MemoryStore, Clock]:
    clock = clock or Clock()
    store = MemoryStore(clock=clock)
    return SimulatedSms(store, clock=clock, **limits), store, clock


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_store_keeps_only_the_codes_digest() -> None:
    factor, store, _ = sms()
    code = (await factor.begin(session()))["demo_code"]
    record = await store.find(Kind.STEPUP_CODE, "sid-1")
    assert record is not None
    assert set(record) == {"code_sha256", "expires"}
    assert code not in str(record)
    # only the simulated phone (the demo's stand-in for an SMS gateway) holds the code
    assert await store.find(Kind.STEPUP_SMS_OUTBOX, "sid-1") == {"code": code}


async def test_a_reload_shows_the_same_code_and_does_not_resend() -> None:
    factor, _, _ = sms()
    first = await factor.begin(session())
    again = await factor.begin(session())
    assert first == again
    assert first["masked_phone"] == "150****0003"


async def test_otp_is_single_use() -> None:
    factor, store, _ = sms()
    code = (await factor.begin(session()))["demo_code"]
    await factor.verify(session(), {"otp": code})
    with pytest.raises(LoginError, match="已过期或已使用"):
        await factor.verify(session(), {"otp": code})
    assert await store.find(Kind.STEPUP_SMS_OUTBOX, "sid-1") is None


async def test_otp_is_bound_to_its_session() -> None:
    factor, _, _ = sms()
    code = (await factor.begin(session(sid="a")))["demo_code"]
    with pytest.raises(LoginError):
        await factor.verify(session(sid="b"), {"otp": code})
    await factor.verify(session(sid="a"), {"otp": code})


async def test_expired_otp_is_refused_and_a_new_one_is_sent() -> None:
    factor, _, clock = sms()
    old = (await factor.begin(session()))["demo_code"]
    clock.now += 301
    with pytest.raises(LoginError, match="已过期"):
        await factor.verify(session(), {"otp": old})
    new = (await factor.begin(session()))["demo_code"]
    await factor.verify(session(), {"otp": new})


async def test_otp_expiring_between_tries_is_refused() -> None:
    factor, _, clock = sms()
    code = (await factor.begin(session()))["demo_code"]
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    clock.now += 299
    with pytest.raises(LoginError, match="验证码错误"):
        await factor.verify(session(), {"otp": wrong})
    clock.now += 2
    with pytest.raises(LoginError, match="已过期"):
        await factor.verify(session(), {"otp": code})


async def test_lock_destroys_the_code_and_a_new_one_comes_after_the_lock() -> None:
    factor, store, clock = sms()
    code = (await factor.begin(session()))["demo_code"]
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(4):
        with pytest.raises(LoginError) as refused:
            await factor.verify(session(), {"otp": wrong})
        assert not isinstance(refused.value, LockedOut)
    with pytest.raises(LockedOut) as locked:
        await factor.verify(session(), {"otp": wrong})
    assert locked.value.retry_after == 60
    with pytest.raises(LockedOut):
        await factor.verify(session(), {"otp": code})
    during = await factor.begin(session())
    assert during["demo_code"] == ""
    assert during["locked_seconds"] == 60
    assert await store.find(Kind.STEPUP_SMS_OUTBOX, "sid-1") is None
    clock.now += 61
    fresh = (await factor.begin(session()))["demo_code"]
    assert fresh
    await factor.verify(session(), {"otp": fresh})


async def test_a_wrong_code_counts_and_the_right_one_still_works() -> None:
    factor, _, _ = sms()
    code = (await factor.begin(session()))["demo_code"]
    with pytest.raises(LoginError, match="验证码错误，还可以尝试 4 次"):
        await factor.verify(session(), {"otp": wrong(code)})
    assert (await factor.begin(session()))["demo_code"] == code  # the same code, kept
    await factor.verify(session(), {"otp": code})
    # a success starts the person's tries afresh
    again = (await factor.begin(session()))["demo_code"]
    with pytest.raises(LoginError, match="还可以尝试 4 次"):
        await factor.verify(session(), {"otp": wrong(again)})


async def test_malformed_code_is_refused_and_counts_nothing() -> None:
    factor, store, _ = sms()
    code = (await factor.begin(session()))["demo_code"]
    for answer in ("12ab", "", "1234567"):
        with pytest.raises(LoginError, match="6 位数字"):
            await factor.verify(session(), {"otp": answer})
    assert await store.incr(Kind.STEPUP_TRIES, "c-0003", 60, by=0) == (0, 0)
    await factor.verify(session(), {"otp": code})


async def test_a_new_session_gives_no_more_tries() -> None:
    """The tries are the person's: logging in again (a new sid) neither resets the count
    nor lifts the lock, and the new session gets no code while it lasts."""
    factor, _, clock = sms()
    first = session(sid="sid-1")
    code = (await factor.begin(first))["demo_code"]
    for _ in range(3):
        with pytest.raises(LoginError):
            await factor.verify(first, {"otp": wrong(code)})
    second = session(sid="sid-2")
    new_code = (await factor.begin(second))["demo_code"]
    assert new_code
    with pytest.raises(LoginError, match="还可以尝试 1 次"):
        await factor.verify(second, {"otp": wrong(new_code)})
    with pytest.raises(LockedOut) as locked:
        await factor.verify(second, {"otp": wrong(new_code)})
    assert locked.value.retry_after == 60
    third = session(sid="sid-3")
    during = await factor.begin(third)
    assert during["demo_code"] == ""
    assert during["locked_seconds"] == 60
    with pytest.raises(LockedOut):
        await factor.verify(first, {"otp": code})  # even the first session's right code
    other_person = session(sid="sid-4", subject="c-0004")
    assert (await factor.begin(other_person))["demo_code"], "another person is not locked"
    clock.now += 60
    fresh = (await factor.begin(third))["demo_code"]
    await factor.verify(third, {"otp": fresh})


async def test_sends_are_limited_per_person() -> None:
    factor, _, clock = sms(max_sends=3, send_window=3600)
    codes = [(await factor.begin(session(sid=f"sid-{n}")))["demo_code"] for n in range(3)]
    assert all(codes)
    assert (await factor.begin(session(sid="sid-0")))["demo_code"] == codes[0], "no resend"
    flood = await factor.begin(session(sid="sid-9"))
    assert flood["demo_code"] == ""
    assert flood["locked_seconds"] == 3600
    clock.now += 3600
    assert (await factor.begin(session(sid="sid-9")))["demo_code"]


async def test_tries_are_exact_across_processes_and_sessions(redis_url: str,
                                                            redis_prefix: str) -> None:
    """Two gateway processes (a RedisStore each), six sessions of one person, 30 wrong
    codes at once: at most ``max_failures`` are compared, and then the right one fails."""
    stores = [RedisStore.from_url(redis_url, prefix=redis_prefix) for _ in range(2)]
    factors = [SimulatedSms(store) for store in stores]
    try:
        sessions = [session(sid=f"sid-{n}") for n in range(6)]
        codes = [(await factors[n % 2].begin(s))["demo_code"] for n, s in enumerate(sessions)]
        results = await asyncio.gather(
            *(factors[n % 2].verify(sessions[n % 6], {"otp": wrong(codes[n % 6])})
              for n in range(30)), return_exceptions=True)
        messages = [str(r) for r in results]
        compared = [m for m in messages if "还可以尝试" in m]
        assert len(compared) == len(set(compared)) <= 4, messages  # each slot once
        assert all(isinstance(r, LoginError) for r in results)
        with pytest.raises(LockedOut):
            await factors[0].verify(sessions[0], {"otp": codes[0]})
    finally:
        for store in stores:
            await store.close()


async def test_sms_without_a_phone_number_is_an_error_page() -> None:
    from gateway.errors import PageError

    factor, _, _ = sms()
    with pytest.raises(PageError):
        await factor.begin(session(phone=""))


async def test_face_challenge_is_single_use_and_session_bound() -> None:
    store = MemoryStore()
    factor = SimulatedFace(store)
    challenge = (await factor.begin(session(sid="a")))["challenge"]
    assert (await store.find(Kind.STEPUP_FACE, challenge)) == {"sid": "a"}
    with pytest.raises(LoginError):
        await factor.verify(session(sid="a"), {})
    with pytest.raises(LoginError):
        await factor.verify(session(sid="a"), {"challenge": "{x}:" * 40})
    await factor.verify(session(sid="a"), {"challenge": challenge})
    with pytest.raises(LoginError):
        await factor.verify(session(sid="a"), {"challenge": challenge})
    other = (await factor.begin(session(sid="a")))["challenge"]
    with pytest.raises(LoginError):
        await factor.verify(session(sid="b"), {"challenge": other})
    await factor.verify(session(sid="a"), {"challenge": other})  # not spent by "b"


def person(amr: tuple[str, ...], verified: str, phone: str | None = "13800000001") -> Identity:
    claims = {"name": "张三", "id_number": "430102199001010016", "verified_level": verified}
    if phone:
        claims["phone_number"] = phone
    return Identity(subject="c-x", kind=PersonKind.NATURAL, acr=level_of(amr, verified),
                    amr=amr, auth_time=0, region="430102", claims=claims)


def test_plan_asks_only_for_factors_that_raise_the_level() -> None:
    store = MemoryStore()
    pages = StepUpPages(authorizer=None, sessions=None, pages=None, csrf=None,  # type: ignore[arg-type]
                        factors=[SimulatedFace(store), SimulatedSms(store)])
    # after a password (L2) only the face check raises anything
    assert [f.name for f in pages.plan(person(("pwd",), "L3"), 3)] == ["face"]
    assert pages.plan(person(("pwd",), "L2"), 3) == [], "not above the verified level"
    assert pages.plan(person(("pwd",), "L1"), 2) == []
    assert pages.plan(person(("pwd",), "L3"), 4) == []
    # a channel session (L1): the SMS code to L2, then the face check
    assert [f.name for f in pages.plan(person(("wechat",), "L3"), 3)] == ["sms", "face"]
    assert [f.name for f in pages.plan(person(("wechat",), "L3"), 2)] == ["sms"]
    assert [f.name for f in pages.plan(person(("wechat",), "L2"), 2)] == ["sms"]
    # no phone to text: the face check (against the real-name record) is the only way
    assert [f.name for f in pages.plan(person(("wechat",), "L3", phone=None), 3)] == ["face"]
    nobody = Identity(subject="c-y", kind=PersonKind.NATURAL, acr="L1", amr=("wechat",),
                      auth_time=0, region="430102", claims={"verified_level": "L3"})
    assert pages.plan(nobody, 2) == []  # a channel-only account: unmet at once


def test_without_factors_every_level_above_the_session_is_unmet() -> None:
    pages = StepUpPages(authorizer=None, sessions=None, pages=None, csrf=None,  # type: ignore[arg-type]
                        factors=[])
    assert pages.plan(person(("pwd",), "L3"), 3) == []


def test_only_known_step_up_methods_are_factors() -> None:
    class Password(SimulatedFace):
        name = "pwd"

    with pytest.raises(ValueError, match="not step-up methods"):
        StepUpPages(authorizer=None, sessions=None, pages=None, csrf=None,  # type: ignore[arg-type]
                    factors=[Password(MemoryStore())])
