"""The login page as the way back to a deep link (the proxy, /go) — not only to an RP."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from gateway.app import create_app
from gateway.logs import JsonFormatter
from gateway.store.memory import MemoryStore
from tests.support.audit import audited
from tests.support.gateway import CITIZEN, DEMO_PASSWORD, config_on_port, form_field
from tests.support.servers import free_port, serve


@pytest.fixture(scope="module")
def gw() -> Iterator[str]:
    port = free_port()
    with serve(create_app(config_on_port(port), store=MemoryStore()), port) as url:
        yield url


@pytest.fixture
def browser(gw: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw, follow_redirects=False) as client:
        yield client


def test_login_returns_to_the_deep_link(browser: httpx.Client) -> None:
    parked = browser.get("/login", params={"next": "/my/logins?tab=1"})
    assert parked.status_code == 303
    page = browser.get(parked.headers["location"])
    assert page.status_code == 200
    done = browser.post("/login", data={
        "csrf_token": form_field(page.text, "csrf_token"), "r": form_field(page.text, "r"),
        "username": CITIZEN, "password": DEMO_PASSWORD})
    assert done.status_code == 303
    assert done.headers["location"] == "/my/logins?tab=1"
    assert "我的登录" in browser.get(done.headers["location"]).text
    # the parked link is used up
    again = browser.get(parked.headers["location"])
    assert again.status_code == 400


def test_a_failed_attempt_keeps_the_deep_link(browser: httpx.Client) -> None:
    page = browser.get(browser.get("/login", params={"next": "/my/logins"}).headers["location"])
    form = {"csrf_token": form_field(page.text, "csrf_token"), "r": form_field(page.text, "r"),
            "username": CITIZEN}
    failed = browser.post("/login", data={**form, "password": "wrong"})
    assert failed.status_code == 401
    done = browser.post("/login", data={**form, "password": DEMO_PASSWORD})
    assert done.headers["location"] == "/my/logins"


@pytest.mark.parametrize(("typed", "logged"), [
    ("S3cr3t-Pa55w0rd!", "unrecognised"),  # a password typed into the user name field
    ("Qz7!kVp#2xLm", "unrecognised"),
    ("13900000002", "139****0002"),  # 李四's phone
    ("430602197811300056", "430***********0056"),  # 王五's ID number
    ("430602197811300057", "unrecognised"),  # wrong check digit: not an ID number
])
def test_a_failed_login_logs_only_a_masked_phone_or_id_number(
        browser: httpx.Client, caplog: pytest.LogCaptureFixture, typed: str,
        logged: str) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.setFormatter(JsonFormatter())
    page = browser.get(browser.get("/login", params={"next": "/my/logins"}).headers["location"])
    failed = browser.post("/login", data={
        "csrf_token": form_field(page.text, "csrf_token"), "r": form_field(page.text, "r"),
        "username": typed, "password": "wrong"})
    assert failed.status_code == 401
    [record] = audited(caplog.records, "login", "failure")
    assert getattr(record, "subject", None) == logged
    # What a log reader gets: every line and every field a record carries, without the
    # clock, process numbers and random ids every record has (hex digits that would match
    # four digits of the typed number by chance, about one run in a hundred).
    standard = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
    random_ids = {"time", "request_id", "audit_id"}
    lines = [{k: v for k, v in json.loads(text).items() if k not in random_ids}
             for text in caplog.text.splitlines()]
    fields = [{k: v for k, v in r.__dict__.items()
               if k not in standard and k not in random_ids} for r in caplog.records]
    everything = repr(lines) + repr(fields) + repr([r.getMessage() for r in caplog.records])
    assert typed not in everything
    if logged == "unrecognised":  # not even a piece of it
        pieces = [typed[i:i + 4] for i in range(len(typed) - 3)]
        assert [p for p in pieces if p in everything] == []
    else:
        assert logged in everything


@pytest.mark.parametrize("target", [
    "https://attacker.example/", "//attacker.example/x", "/\\\\attacker.example", "javascript:x",
    "/ok\r\nSet-Cookie: a=b",
])
def test_next_must_stay_on_the_gateway(browser: httpx.Client, target: str) -> None:
    response = browser.get("/login", params={"next": target})
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "参考编号" in response.text
