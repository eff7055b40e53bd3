"""Client authentication that cannot be read: ``Authorization: Basic`` that is not base64,
not UTF-8, or has no ``:`` is ``401 invalid_client`` at /token, /introspect and /revoke
(RFC 6749 §2.3.1, §5.2), never a 500, never passed over for another method, and it
changes nothing."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from gateway.store.memory import MemoryStore
from tests.support.rp import full_login

MALFORMED = [
    b"Basic " + base64.b64encode(b"hunan-miniapp:\xff\xfe"),  # a secret that is not UTF-8
    b"Basic " + base64.b64encode(b"\xc3\x28:x"),                # an id that is not UTF-8
    b"Basic \xff\xfe\xfd",                                    # raw bytes, no base64 at all
    b"Basic !!not*base64!!",
    b"Basic aHVuYW4tbWluaWFwcA=x=",                           # base64 with junk
    b"Basic " + base64.b64encode(b"hunan-miniapp"),           # no colon
    b"Basic " + base64.b64encode(b":secret"),                 # no client id
    b"Basic",
]


@pytest.fixture
def miniapp(gateway_url: str, browser: httpx.Client) -> dict[str, Any]:
    """Tokens of the public client: the one ``none`` would authenticate if a broken
    Basic header were passed over."""
    return full_login(gateway_url, browser, "hunan-miniapp")[1]


def requests(token: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    return [
        ("/token", {"grant_type": "refresh_token", "refresh_token": token["refresh_token"],
                    "client_id": "hunan-miniapp"}),
        ("/revoke", {"token": token["refresh_token"], "client_id": "hunan-miniapp"}),
        ("/introspect", {"token": token["access_token"], "client_id": "hunan-miniapp"}),
    ]


@pytest.mark.parametrize("header", MALFORMED)
def test_unreadable_basic_credentials_are_invalid_client_and_change_nothing(
        gateway_url: str, store: MemoryStore, miniapp: dict[str, Any], header: bytes) -> None:
    before = store.snapshot()
    for path, form in requests(miniapp):
        response = httpx.post(f"{gateway_url}{path}", data=form,
                              headers={b"Authorization": header})
        assert response.status_code == 401, (path, response.text)
        assert response.json()["error"] == "invalid_client"
        assert response.headers["www-authenticate"].startswith("Basic")
        assert response.headers["cache-control"] == "no-store"
    assert store.snapshot() == before
    refreshed = httpx.post(f"{gateway_url}/token", data=requests(miniapp)[0][1])
    assert refreshed.status_code == 200, "the refresh token must be as it was"


@pytest.mark.parametrize(("body", "why"), [
    (b"token=" + b"x" * (70 * 1024), "too large"),
    (b"token=%FF%FE&token_type_hint=access_token", "not UTF-8"),
    (b"grant_type=refresh_token&refresh_token=\xff\xfe", "not UTF-8"),
])
def test_a_form_too_large_or_not_utf8_is_invalid_request(gateway_url: str, body: bytes,
                                                           why: str) -> None:
    for path in ("/token", "/introspect", "/revoke"):
        answer = httpx.post(f"{gateway_url}{path}", content=body, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error"] == "invalid_request"
        assert why in answer.json()["error_description"]


def test_a_form_keeps_repeated_and_blank_parameters(gateway_url: str,
                                                    miniapp: dict[str, Any]) -> None:
    """Parsed as RFC 6749 reads it: a parameter given twice is refused (§3.2) and changes
    nothing; a blank one is there (and authlib judges it)."""
    twice = httpx.post(
        f"{gateway_url}/token",
        content=(b"grant_type=refresh_token&grant_type=refresh_token&client_id=hunan-miniapp"
                 b"&refresh_token=" + miniapp["refresh_token"].encode()),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert twice.status_code == 400
    assert twice.json()["error"] == "invalid_request"
    assert "repeated" in twice.json()["error_description"]
    # the refresh token was not spent by the refused request
    spent = httpx.post(f"{gateway_url}/token", data={
        "grant_type": "refresh_token", "client_id": "hunan-miniapp",
        "refresh_token": miniapp["refresh_token"]})
    assert spent.status_code == 200, spent.text
    blank = httpx.post(f"{gateway_url}/introspect", content=b"token=&client_id=hunan-miniapp",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert blank.status_code in (400, 401)
