"""Assurance levels: acr is what this authentication did, capped by the verified level.

The mapping on its own, then what an RP sees through authlib's client: the ID token's
acr/amr/auth_time, the ``verified_level`` claim at userinfo and in discovery.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from gateway.app import create_app
from gateway.assurance import METHOD_LEVELS, level_of
from gateway.identity import KNOWN_CLAIMS, LEVELS, SCOPE_CLAIMS
from gateway.store import MemoryStore
from tests.support.gateway import config_on_port, log_in
from tests.support.rp import authorize_url, discovery, rp_client, validate_id_token
from tests.support.servers import free_port, serve


@pytest.mark.parametrize(("amr", "verified", "acr"), [
    (("pwd",), "L1", "L1"),
    (("pwd",), "L2", "L2"),
    (("pwd",), "L3", "L2"),  # a password alone on an L3 account is L2
    (("pwd",), "L4", "L2"),
    (("pwd", "sms"), "L3", "L2"),  # a second factor of the same kind proves no more
    (("pwd", "face"), "L3", "L3"),
    (("pwd", "face"), "L2", "L2"),  # never above how far the account was verified
    (("pwd", "face"), "L4", "L3"),  # no method here reaches L4
    (("wechat",), "L3", "L1"),  # a channel identity alone is L1
    (("wechat", "sms"), "L3", "L2"),
    (("face",), "L3", "L3"),
    ((), "L3", ""),  # no authentication, no level
    (("pwd",), "", ""),  # an account of no known verified level reaches none
    (("pwd",), "L9", ""),
    (("hwk", "unknown"), "L4", ""),
])
def test_level_of(amr: tuple[str, ...], verified: str, acr: str) -> None:
    assert level_of(amr, verified) == acr


def test_every_method_maps_to_a_level_and_l4_is_out_of_reach() -> None:
    assert set(METHOD_LEVELS.values()) <= set(LEVELS[:3])


def test_verified_level_is_a_claim_of_the_openid_scope() -> None:
    assert "verified_level" in SCOPE_CLAIMS["openid"]
    assert "verified_level" in KNOWN_CLAIMS


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    port = free_port()
    config = config_on_port(port, clients={"changsha-gov": {"claims": [
        "name", "phone_number", "phone_number_verified", "region", "verified_level"]}})
    with serve(create_app(config, store=MemoryStore()), port) as url:
        yield url


@pytest.mark.parametrize(("username", "acr", "verified"), [
    ("13900000002", "L2", "L3"),  # c-0002: the password says L2, the account L3
    ("13800000004", "L2", "L2"),
    ("15000000003", "L1", "L1"),
])
def test_the_rp_sees_what_was_done_and_how_far_the_account_was_verified(
        gateway_url: str, username: str, acr: str, verified: str) -> None:
    meta = discovery(gateway_url)
    assert "verified_level" in meta["claims_supported"]
    client = rp_client("changsha-gov", gateway_url)
    nonce = secrets.token_urlsafe(12)
    url, verifier = authorize_url(client, gateway_url, nonce=nonce)
    with httpx.Client(base_url=gateway_url) as browser:
        callback = log_in(browser, url, username)
    token = client.fetch_token(f"{gateway_url}/token", authorization_response=callback,
                               code_verifier=verifier)
    claims = validate_id_token(gateway_url, token["id_token"], "changsha-gov", nonce,
                               token["access_token"])
    assert (claims["acr"], claims["amr"]) == (acr, ["pwd"])
    assert "verified_level" not in claims  # a claim for userinfo, as the scope's others
    userinfo = client.get(meta["userinfo_endpoint"]).json()
    assert userinfo["verified_level"] == verified


def test_a_client_not_registered_for_it_does_not_get_it(gateway_url: str) -> None:
    client = rp_client("yueyang-gov", gateway_url)
    url, verifier = authorize_url(client, gateway_url, nonce="n")
    with httpx.Client(base_url=gateway_url) as browser:
        callback = log_in(browser, url, "13900000002")
    client.fetch_token(f"{gateway_url}/token", authorization_response=callback,
                       code_verifier=verifier)
    assert "verified_level" not in client.get(f"{gateway_url}/userinfo").json()
