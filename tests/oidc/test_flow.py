"""The code flow end to end, driven by authlib's OAuth 2 client against a real server."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from tests.support.gateway import CITIZEN, SECRETS, log_in, query
from tests.support.rp import (
    CHANGSHA_CALLBACK,
    YUEYANG_CALLBACK,
    authorize_url,
    discovery,
    full_login,
    rp_client,
    validate_id_token,
)


def test_discovery_is_valid_openid_provider_metadata(gateway_url: str) -> None:
    from authlib.oidc.discovery import OpenIDProviderMetadata

    meta = OpenIDProviderMetadata(discovery(gateway_url))
    meta.validate()
    assert meta["issuer"] == gateway_url
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert set(meta["id_token_signing_alg_values_supported"]) == {"RS256", "ES256"}


def test_jwks_publishes_public_keys_only(gateway_url: str) -> None:
    jwks = httpx.get(f"{gateway_url}/jwks").json()
    assert {k["alg"] for k in jwks["keys"]} == {"RS256", "ES256"}
    for key in jwks["keys"]:
        assert key["kid"]
        assert key["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys()


def test_code_flow_with_pkce_returns_valid_id_token(gateway_url: str,
                                                     browser: httpx.Client) -> None:
    _client, token, nonce = full_login(gateway_url, browser)
    claims = validate_id_token(gateway_url, token["id_token"], "changsha-gov", nonce,
                               token["access_token"])
    assert claims["sub"] == "c-0001"
    assert claims["azp"] == "changsha-gov"
    assert claims["acr"] == "L2"
    assert claims["amr"] == ["pwd"]
    assert claims["sid"]
    assert claims["auth_time"] <= claims["iat"]
    assert jwt.decode(token["id_token"], KeySet.import_key_set(
        httpx.get(f"{gateway_url}/jwks").json())).header["alg"] == "RS256"


def test_access_token_is_rfc9068_jwt_with_audience(gateway_url: str,
                                                    browser: httpx.Client) -> None:
    _, token, _ = full_login(gateway_url, browser)
    keys = KeySet.import_key_set(httpx.get(f"{gateway_url}/jwks").json())
    at = jwt.decode(token["access_token"], keys)
    assert at.header["typ"] == "at+jwt"
    # RFC 9068 §2.1: the server's choice, ES256, although the client's ID tokens are RS256
    assert at.header["alg"] == "ES256"
    assert at.claims["aud"] == "changsha-gov"
    assert at.claims["client_id"] == "changsha-gov"
    assert at.claims["iss"] == gateway_url
    assert {"exp", "iat", "jti", "sub", "scope"} <= at.claims.keys()


def test_authorization_response_carries_iss_and_state(gateway_url: str,
                                                       browser: httpx.Client) -> None:
    client = rp_client("changsha-gov", gateway_url)
    url, _ = authorize_url(client, gateway_url, state="deep-link-state", nonce="n")
    params = query(log_in(browser, url))
    assert params["iss"] == gateway_url
    assert params["state"] == "deep-link-state"
    assert params["code"]


def test_second_rp_gets_a_code_silently(gateway_url: str, browser: httpx.Client) -> None:
    full_login(gateway_url, browser, "changsha-gov")
    client = rp_client("yueyang-gov", gateway_url)
    nonce = secrets.token_urlsafe(8)
    url, verifier = authorize_url(client, gateway_url, nonce=nonce, prompt="none")
    response = browser.get(url)
    assert response.status_code == 302
    callback = response.headers["location"]
    assert callback.startswith(YUEYANG_CALLBACK)
    assert "code=" in callback
    token = client.fetch_token(f"{gateway_url}/token", authorization_response=callback,
                               code_verifier=verifier)
    claims = validate_id_token(gateway_url, token["id_token"], "yueyang-gov", nonce)
    assert claims["sub"] == "c-0001"
    keys = KeySet.import_key_set(httpx.get(f"{gateway_url}/jwks").json())
    assert jwt.decode(token["id_token"], keys).header["alg"] == "ES256"


def test_prompt_none_without_session_is_login_required(gateway_url: str,
                                                        browser: httpx.Client) -> None:
    client = rp_client("changsha-gov", gateway_url)
    url, _ = authorize_url(client, gateway_url, prompt="none", state="s1")
    response = browser.get(url)
    assert response.status_code == 302
    params = query(response.headers["location"])
    assert params["error"] == "login_required"
    assert params["state"] == "s1"
    assert params["iss"] == gateway_url


def test_prompt_login_forces_a_new_login(gateway_url: str, browser: httpx.Client) -> None:
    full_login(gateway_url, browser)
    client = rp_client("changsha-gov", gateway_url)
    url, _ = authorize_url(client, gateway_url, prompt="login")
    response = browser.get(url)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?r=")


def test_max_age_zero_forces_a_new_login(gateway_url: str, browser: httpx.Client) -> None:
    full_login(gateway_url, browser)
    client = rp_client("changsha-gov", gateway_url)
    url, _ = authorize_url(client, gateway_url, max_age="0")
    assert browser.get(url).headers["location"].startswith("/login?r=")


def test_acr_values_above_session_level_need_interaction(gateway_url: str,
                                                          browser: httpx.Client) -> None:
    full_login(gateway_url, browser)  # c-0001 is L2
    client = rp_client("changsha-gov", gateway_url)
    url, _ = authorize_url(client, gateway_url, prompt="none", acr_values="L3")
    params = query(browser.get(url).headers["location"])
    assert params["error"] == "interaction_required"


def test_public_client_with_pkce(gateway_url: str, browser: httpx.Client) -> None:
    _client, token, nonce = full_login(gateway_url, browser, "hunan-miniapp")
    validate_id_token(gateway_url, token["id_token"], "hunan-miniapp", nonce)
    assert "refresh_token" in token


def test_refresh_rotates_and_old_token_is_dead(gateway_url: str,
                                               browser: httpx.Client) -> None:
    client, token, _ = full_login(gateway_url, browser)
    first = token["refresh_token"]
    refreshed = client.refresh_token(f"{gateway_url}/token", refresh_token=first)
    assert refreshed["refresh_token"] != first
    validate_id_token(gateway_url, refreshed["id_token"], "changsha-gov", None)
    again = client.refresh_token(f"{gateway_url}/token",
                                 refresh_token=refreshed["refresh_token"])
    assert again["access_token"] != refreshed["access_token"]


def test_userinfo_get_and_post_release_only_approved_claims(gateway_url: str,
                                                             browser: httpx.Client) -> None:
    client, token, _ = full_login(gateway_url, browser)
    got = client.get(f"{gateway_url}/userinfo").json()
    assert got["sub"] == "c-0001"
    assert got["name"] == "张三"
    assert got["phone_number"] == CITIZEN
    # changsha-gov is not approved for the ID number nor asked for region here
    assert "id_number" not in got
    assert "region" not in got
    assert "birthdate" not in got
    posted = httpx.post(f"{gateway_url}/userinfo",
                        headers={"Authorization": f"Bearer {token['access_token']}"})
    assert posted.status_code == 200
    assert posted.json() == got


def test_userinfo_scope_limits_claims(gateway_url: str, browser: httpx.Client) -> None:
    client = rp_client("changsha-gov", gateway_url, scope="openid")
    url, verifier = authorize_url(client, gateway_url, nonce="n")
    token = client.fetch_token(f"{gateway_url}/token",
                               authorization_response=log_in(browser, url),
                               code_verifier=verifier)
    assert client.get(f"{gateway_url}/userinfo").json() == {"sub": "c-0001"}
    assert token["scope"] == "openid"


def test_concurrent_redemptions_of_a_code_give_at_most_one_token_set(
        gateway_url: str, browser: httpx.Client) -> None:
    client = rp_client("changsha-gov", gateway_url)
    url, verifier = authorize_url(client, gateway_url, nonce="n")
    code = query(log_in(browser, url))["code"]
    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": CHANGSHA_CALLBACK, "code_verifier": verifier}

    def redeem(_: int) -> httpx.Response:
        return httpx.post(f"{gateway_url}/token", data=form,
                          auth=("changsha-gov", SECRETS["changsha-gov"]))

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(redeem, range(16)))
    statuses = [a.status_code for a in answers]
    # Never two token sets. Usually one: but each replay revokes the grant (RFC 6749
    # §4.1.2), and one that lands while the winner is still minting leaves none.
    assert statuses.count(200) <= 1
    assert statuses.count(400) == 16 - statuses.count(200)
    assert all(a.json()["error"] == "invalid_grant" for a in answers if a.status_code == 400)
    for answer in answers:
        if answer.status_code == 200:  # the replays ended its grant: its token is dead
            bearer = {"Authorization": f"Bearer {answer.json()['access_token']}"}
            assert httpx.get(f"{gateway_url}/userinfo", headers=bearer).status_code == 401


@pytest.mark.parametrize("alg_client", ["changsha-gov", "yueyang-gov"])
def test_id_token_alg_follows_registration(gateway_url: str, browser: httpx.Client,
                                           alg_client: str) -> None:
    _, token, _ = full_login(gateway_url, browser, alg_client)
    header = extract_compact(token["id_token"].encode()).protected
    assert header["alg"] == {"changsha-gov": "RS256", "yueyang-gov": "ES256"}[alg_client]
    assert header["kid"]


def test_a_client_may_ask_for_its_access_tokens_in_another_algorithm() -> None:
    """A resource server that verifies only RS256 keeps getting RS256 access tokens."""
    from gateway.app import create_app
    from gateway.store.memory import MemoryStore
    from tests.support.gateway import config_on_port
    from tests.support.servers import free_port, serve

    port = free_port()
    config = config_on_port(port, clients={
        "changsha-gov": {"access_token_signed_response_alg": "RS256"}})
    with serve(create_app(config, store=MemoryStore()), port) as url, \
            httpx.Client(base_url=url) as browser, httpx.Client(base_url=url) as another:
        _, token, _ = full_login(url, browser, "changsha-gov")
        _, other, _ = full_login(url, another, "yueyang-gov")
        keys = KeySet.import_key_set(httpx.get(f"{url}/jwks").json())
        assert jwt.decode(token["access_token"], keys).header["alg"] == "RS256"
        assert jwt.decode(other["access_token"], keys).header["alg"] == "ES256"
        for tokens in (token, other):
            answer = httpx.get(f"{url}/userinfo", headers={
                "Authorization": f"Bearer {tokens['access_token']}"})
            assert answer.status_code == 200, answer.text
