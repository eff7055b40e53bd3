"""The proxy's own answers: a page or redirect for people, JSON for programs."""

from __future__ import annotations

import json

import pytest
from starlette.requests import Request

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


ANSWERS = ProxyAnswers(pages=Pages(), login_path="/login", stepup_path="/stepup",
                       max_body=2 * 1024 * 1024)


def test_login_is_a_redirect_for_people_and_json_for_programs() -> None:
    page = ANSWERS.login_required(request(sec_fetch_mode="navigate"), "/s/x/a?b=1")
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fs%2Fx%2Fa%3Fb%3D1"
    api = ANSWERS.login_required(request(accept="application/json"), "/s/x/a")
    assert api.status_code == 401
    assert json.loads(bytes(api.body))["error"] == "login_required"
    posted = ANSWERS.login_required(request("POST", sec_fetch_mode="navigate"), "/s/x/a")
    assert posted.status_code == 401, "a form post is never redirected (its body would be lost)"


def test_too_large_names_the_limit_and_carries_a_reference() -> None:
    api = ANSWERS.too_large(request(accept="application/json"))
    assert api.status_code == 413
    body = json.loads(bytes(api.body))
    assert body["error"] == "payload_too_large"
    assert body["ref"]
    page = ANSWERS.too_large(request(sec_fetch_mode="navigate"))
    assert page.status_code == 413
    assert "2 MB" in bytes(page.body).decode()
