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
