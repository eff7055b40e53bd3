"""The proxy's own answers: a page or redirect for people, JSON for programs."""

from __future__ import annotations

import json

import pytest
from starlette.requests import Request

from gateway.legacy.access import Refusal
from gateway.pages import Pages
from gateway.proxy.answers import ProxyAnswers, is_navigation


def request(method: str = "GET", **headers: str) -> Request:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": method, "path": "/s/x/y", "headers": raw,
                    "query_string": b""})


@pytest.mark.parametrize(("headers", "expected"), [
    ({"sec_fetch_mode": "navigate"}, True),
    ({"sec_fetch_mode": "cors", "accept": "text/html"}, False),
    ({"accept": "text/html,application/xhtml+xml"}, True),
    ({"accept": "text/html", "x_requested_with": "XMLHttpRequest"}, False),
    ({"accept": "application/json"}, False),
    ({}, False),
])
def test_is_navigation(headers: dict[str, str], expected: bool) -> None:
    assert is_navigation(request(**headers)) is expected


ANSWERS = ProxyAnswers(pages=Pages(), max_body=2 * 1024 * 1024)
LOGIN = "/login?next=%2Fs%2Fx%2Fa%3Fb%3D1"
STEPUP = "/stepup?next=%2Fs%2Fx%2Fa&acr=L3"


def test_login_is_a_redirect_for_people_and_json_for_programs() -> None:
    page = ANSWERS.refused(request(sec_fetch_mode="navigate"), Refusal("login"), LOGIN)
    assert page.status_code == 303
    assert page.headers["location"] == LOGIN
    api = ANSWERS.refused(request(accept="application/json"), Refusal("login"), LOGIN)
    assert api.status_code == 401
    assert json.loads(bytes(api.body))["error"] == "login_required"
    assert "log in at /login first" in json.loads(bytes(api.body))["error_description"]
    posted = ANSWERS.refused(request("POST", sec_fetch_mode="navigate"), Refusal("login"),
                             LOGIN)
    assert posted.status_code == 401, "a form post is never redirected (its body would be lost)"


def test_stepup_is_a_redirect_for_people_and_403_for_programs() -> None:
    refusal = Refusal("stepup", "L3")
    page = ANSWERS.refused(request(sec_fetch_mode="navigate"), refusal, STEPUP)
    assert (page.status_code, page.headers["location"]) == (303, STEPUP)
    api = ANSWERS.refused(request(accept="application/json"), refusal, STEPUP)
    assert api.status_code == 403
    assert json.loads(bytes(api.body))["acr_values"] == "L3"
    assert 'acr_values="L3"' in api.headers["www-authenticate"]
    posted = ANSWERS.refused(request("POST", sec_fetch_mode="navigate"), refusal, STEPUP)
    assert posted.status_code == 403


def test_too_large_names_the_limit_and_carries_a_reference() -> None:
    api = ANSWERS.too_large(request(accept="application/json"))
    assert api.status_code == 413
    body = json.loads(bytes(api.body))
    assert body["error"] == "payload_too_large"
    assert body["ref"]
    page = ANSWERS.too_large(request(sec_fetch_mode="navigate"))
    assert page.status_code == 413
    assert "2 MB" in bytes(page.body).decode()
