"""Step-up: a session below the requested level does only the missing factor, keeps its sid.

The flow tests drive a real gateway over HTTP with an httpx client as the browser and
redeem codes with authlib's OAuth 2 client, as tests/oidc/test_flow.py does; the factor
tests at the end pin the store-level rules (hash only, single use, tries, expiry).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.errors import LockedOut, LoginError
from gateway.identity import Identity, PersonKind
from gateway.login.stepup import (
    SimulatedFace,
    SimulatedSms,
    StepUpPages,
)
from gateway.sessions import Session
from gateway.store.base import Kind
from gateway.store.memory import MemoryStore
from tests.support.gateway import DEMO_PASSWORD, config_on_port, form_field, query
from tests.support.rp import authorize_url, rp_client, validate_id_token
from tests.support.servers import free_port, serve

L1_PHONE = "15000000003"  # c-0003, L1
L2_PHONE = "13800000001"  # c-0001, L2
L3_PHONE = "13900000002"  # c-0002, L3
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


def test_l2_session_steps_up_to_l3_with_face_and_keeps_its_sid(
        gateway_url: str, browser: httpx.Client) -> None:
    before = Rp(gateway_url)
    first = before.id_token(log_in(browser, before.url, L2_PHONE))
    assert (first["acr"], first["amr"]) == ("L2", ["pwd"])

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
    assert claims["auth_time"] >= first["auth_time"]


def test_l1_account_does_sms_then_face(gateway_url: str, browser: httpx.Client,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    rp = Rp(gateway_url, acr_values="L3")
    page = log_in(browser, rp.url, L1_PHONE)
    assert is_sms_page(page), page.text
    assert re.search(r'id="masked-phone">150\*\*\*\*0003<', page.text)
    assert L1_PHONE not in page.text
    assert "演示环境" in page.text
    assert "该事项需要 L3 实人认证" in page.text
    code = demo_code(page)
    face = walk(browser, submit(browser, page, otp=code))
    assert is_face_page(face), face.text
    done = walk(browser, submit(browser, face, challenge=form_field(face.text, "challenge")))
    claims = rp.id_token(done)
    assert claims["sub"] == "c-0003"
    assert claims["acr"] == "L3"
    assert claims["amr"] == ["pwd", "sms", "face"]
    audit = [r.getMessage() for r in caplog.records if r.name == "roam.audit"]
    assert any("stepup ok" in m and "factor=sms" in m and "L1->L2" in m for m in audit)
    assert any("stepup ok" in m and "factor=face" in m and "L2->L3" in m for m in audit)
    assert code not in caplog.text


def test_wrong_otp_is_refused_then_the_right_one_works(gateway_url: str,
                                                      browser: httpx.Client) -> None:
    rp = Rp(gateway_url, acr_values="L2")
    page = log_in(browser, rp.url, L1_PHONE)
    code = demo_code(page)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    refused = submit(browser, page, otp=wrong)
    assert refused.status_code == 401
    assert 'role="alert"' in refused.text
    assert "验证码错误" in refused.text
    assert form_field(refused.text, "r") == form_field(page.text, "r")
    assert demo_code(refused) == code  # still the same code: the try only counted
    claims = rp.id_token(walk(browser, submit(browser, refused, otp=code)))
    assert (claims["acr"], claims["amr"]) == ("L2", ["pwd", "sms"])


def test_malformed_otp_is_refused(gateway_url: str, browser: httpx.Client) -> None:
    page = log_in(browser, Rp(gateway_url, acr_values="L2").url, L1_PHONE)
    refused = submit(browser, page, otp="12ab")
    assert refused.status_code == 401
    assert "6 位数字" in refused.text


def test_one_otp_passes_once_under_concurrent_submissions(gateway_url: str,
                                                          browser: httpx.Client) -> None:
    page = log_in(browser, Rp(gateway_url, acr_values="L2").url, L1_PHONE)
    data = {name: form_field(page.text, name) for name in ("csrf_token", "r", "factor")}
    data["otp"] = demo_code(page)

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=str(browser.base_url), cookies=browser.cookies) as twin:
            return twin.post("/stepup", data=data)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(post, range(8)))
    passed = [r for r in responses if r.status_code == 303
              and r.headers["location"].startswith("/stepup?r=")]
    assert len(passed) == 1
    # the others: refused (401), or their cookie was already rotated (back to the login page)
    for response in responses:
        if response is not passed[0]:
            assert response.status_code == 401 or response.headers["location"].startswith(
                "/login?r="), response.text


def test_otp_used_once_cannot_be_replayed_with_the_old_cookie(gateway_url: str,
                                                              browser: httpx.Client) -> None:
    page = log_in(browser, Rp(gateway_url, acr_values="L3").url, L1_PHONE)
    data = {name: form_field(page.text, name) for name in ("csrf_token", "r", "factor")}
    data["otp"] = demo_code(page)
    captured = httpx.Cookies(browser.cookies)
    assert browser.post("/stepup", data=data).status_code == 303
    with httpx.Client(base_url=str(browser.base_url), cookies=captured) as replayer:
        replay = replayer.post("/stepup", data=data)
    assert replay.status_code == 303
    assert replay.headers["location"].startswith("/login?r=")  # the old cookie is dead
    # the browser itself has moved on to the face check
    assert is_face_page(walk(browser, browser.get(f"/stepup?r={data['r']}")))


def test_five_wrong_otps_lock_the_code(gateway_url: str, browser: httpx.Client) -> None:
    page = log_in(browser, Rp(gateway_url, acr_values="L2").url, L1_PHONE)
    code = demo_code(page)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for left in (4, 3, 2, 1):
        refused = submit(browser, page, otp=wrong)
        assert refused.status_code == 401
        assert f"还可以尝试 {left} 次" in refused.text
    locked = submit(browser, page, otp=wrong)
    assert locked.status_code == 429
    assert 'role="alert"' in locked.text
    assert "次数过多" in locked.text
    assert 'id="demo-code"' not in locked.text
    late = submit(browser, page, otp=code)  # the code was destroyed with the lock
    assert late.status_code == 429
    assert 'id="otp"' not in late.text
    assert 'id="stepup-locked"' in browser.get(f"/stepup?r={form_field(page.text, 'r')}").text


def test_face_challenge_passes_once_under_concurrent_posts(gateway_url: str,
                                                           browser: httpx.Client) -> None:
    log_in(browser, Rp(gateway_url).url, L2_PHONE)
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
    log_in(browser, Rp(gateway_url).url, L2_PHONE)
    page = walk(browser, browser.get(Rp(gateway_url, acr_values="L3").url))
    with httpx.Client(base_url=str(browser.base_url), follow_redirects=False) as other:
        log_in(other, Rp(gateway_url).url, L2_PHONE)
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
    params = at_rp(log_in(browser, rp.url, L2_PHONE))
    assert params["error"] == "unmet_authentication_requirements"
    assert params["state"] == "s-l4"
    assert params["iss"] == gateway_url
    assert "code" not in params


def test_session_already_at_l3_asked_for_l2_needs_no_step_up(gateway_url: str,
                                                             browser: httpx.Client) -> None:
    rp = Rp(gateway_url, acr_values="L2")
    done = log_in(browser, rp.url, L3_PHONE)  # straight back to the RP, no step-up page
    claims = rp.id_token(done)
    assert (claims["acr"], claims["amr"]) == ("L3", ["pwd"])
    again = Rp(gateway_url, acr_values="L2")
    assert again.id_token(browser.get(again.url))["acr"] == "L3"


def test_post_without_csrf_token_is_an_error_page(gateway_url: str,
                                                  browser: httpx.Client) -> None:
    page = log_in(browser, Rp(gateway_url, acr_values="L2").url, L1_PHONE)
    response = browser.post("/stepup", data={"r": form_field(page.text, "r"), "factor": "sms",
                                             "otp": demo_code(page)})
    assert response.status_code == 400
    assert 'id="ref"' in response.text
    assert "页面已过期" in response.text
    # nothing changed: the code still works from the real page
    assert at_rp(walk(browser, submit(browser, page, otp=demo_code(page))))["code"]


def test_without_a_session_the_step_up_page_sends_to_login(gateway_url: str,
                                                           browser: httpx.Client) -> None:
    page = log_in(browser, Rp(gateway_url, acr_values="L2").url, L1_PHONE)
    pending = form_field(page.text, "r")
    with httpx.Client(base_url=str(browser.base_url), follow_redirects=False) as stranger:
        response = stranger.get(f"/stepup?r={pending}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?r={pending}"


def test_unknown_request_id_is_an_error_page(browser: httpx.Client) -> None:
    response = browser.get("/stepup?r=nope")
    assert response.status_code == 400
    assert "登录请求已失效" in response.text


def test_form_of_an_earlier_step_shows_the_current_step(gateway_url: str,
                                                         browser: httpx.Client) -> None:
    page = log_in(browser, Rp(gateway_url, acr_values="L3").url, L1_PHONE)
    face = walk(browser, submit(browser, page, otp=demo_code(page)))
    assert is_face_page(face)
    stale = submit(browser, face, factor="sms", otp=demo_code(page))  # back button + resubmit
    assert stale.status_code == 303
    assert stale.headers["location"] == f"/stepup?r={form_field(page.text, 'r')}"
    assert is_face_page(walk(browser, stale))


# --- the factors on their own ------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def session(phone: str = L1_PHONE, sid: str = "sid-1") -> Session:
    identity = Identity(subject="c-0003", kind=PersonKind.NATURAL, acr="L1", amr=("pwd",),
                        auth_time=1, region="430602", claims={"phone_number": phone})
    return Session(sid=sid, identity=identity, created=1, last_seen=1)


def sms(clock: Clock | None = None) -> tuple[SimulatedSms, MemoryStore, Clock]:
    clock = clock or Clock()
    store = MemoryStore(clock=clock)
    return SimulatedSms(store, clock=clock), store, clock


async def test_store_keeps_only_the_codes_digest() -> None:
    factor, store, _ = sms()
    code = (await factor.begin(session()))["demo_code"]
    record = await store.find(Kind.STEPUP_CODE, "sid-1")
    assert record is not None
    assert set(record) == {"code_sha256", "attempts", "expires"}
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


def person(acr: str, phone: str | None = "13800000001") -> Identity:
    claims = {"name": "张三", "id_number": "430102199001010016"}
    if phone:
        claims["phone_number"] = phone
    return Identity(subject="c-x", kind=PersonKind.NATURAL, acr=acr, amr=("pwd",),
                    auth_time=0, region="430102", claims=claims)


def test_plan_goes_one_level_at_a_time_and_knows_what_it_cannot_reach() -> None:
    store = MemoryStore()
    pages = StepUpPages(authorizer=None, sessions=None, pages=None, csrf=None,  # type: ignore[arg-type]
                        factors=[SimulatedFace(store), SimulatedSms(store)])
    assert [f.name for f in pages.plan(person("L1"), 3)] == ["sms", "face"]
    assert [f.name for f in pages.plan(person("L1"), 2)] == ["sms"]
    assert [f.name for f in pages.plan(person("L2"), 3)] == ["face"]
    assert pages.plan(person("L2"), 4) == []
    # no phone to text: the face check (against the real-name record) is the only way
    assert [f.name for f in pages.plan(person("L1", phone=None), 3)] == ["face"]
    nobody = Identity(subject="c-y", kind=PersonKind.NATURAL, acr="L1", amr=("wechat",),
                      auth_time=0, region="430102", claims={})
    assert pages.plan(nobody, 2) == []  # a channel-only account: unmet at once


def test_without_factors_every_level_above_the_session_is_unmet() -> None:
    pages = StepUpPages(authorizer=None, sessions=None, pages=None, csrf=None,  # type: ignore[arg-type]
                        factors=[])
    assert pages.plan(person("L1"), 2) == []
