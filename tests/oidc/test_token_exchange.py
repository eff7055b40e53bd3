"""RFC 8693 token exchange at /token (gateway/oidc/token_exchange.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.store.memory import MemoryStore
from tests.config.test_load import GOOD_CLIENT, write
from tests.support.dpop import DPoPSigner
from tests.support.gateway import REPO, SECRETS
from tests.support.rp import discovery, full_login

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
CHANGSHA = ("changsha-gov", SECRETS["changsha-gov"])


def exchange(gateway_url: str, subject: str, *, auth: tuple[str, str] | None = CHANGSHA,
             dpop: DPoPSigner | None = None, **extra: Any) -> httpx.Response:
    data: dict[str, Any] = {"grant_type": EXCHANGE, "subject_token": subject,
                            "subject_token_type": ACCESS, **extra}
    url = f"{gateway_url}/token"
    headers = {"DPoP": dpop.proof("POST", url)} if dpop else {}
    return httpx.post(url, auth=auth, data=data, headers=headers)


def claims_of(gateway_url: str, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(httpx.get(f"{gateway_url}/jwks").json())
    decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256"])
    assert decoded.header["typ"] == "at+jwt"
    return dict(decoded.claims)


def refused(answer: httpx.Response, error: str) -> None:
    assert answer.status_code in (400, 401), answer.text
    assert answer.json()["error"] == error, answer.text
    assert answer.headers["cache-control"] == "no-store"


def test_discovery_advertises_token_exchange(gateway_url: str) -> None:
    meta = discovery(gateway_url)
    assert EXCHANGE in meta["grant_types_supported"]
    assert meta["token_exchange_token_types_supported"] == [ACCESS]


def test_an_rp_exchanges_its_token_for_one_system_with_only_that_systems_claims(
        gateway_url: str, browser: httpx.Client) -> None:
    client, token, _ = full_login(gateway_url, browser)
    # authlib's own client sends the extension grant
    answer = client.fetch_token(f"{gateway_url}/token", grant_type=EXCHANGE,
                                subject_token=token["access_token"],
                                subject_token_type=ACCESS, audience="hunan-province")
    assert answer["issued_token_type"] == ACCESS
    assert answer["token_type"] == "Bearer"
    assert "refresh_token" not in answer
    claims = claims_of(gateway_url, answer["access_token"])
    subject = claims_of(gateway_url, token["access_token"])
    assert claims["aud"] == "hunan-province"
    assert claims["sub"] == subject["sub"]
    assert claims["gid"] == subject["gid"]
    assert claims["client_id"] == "changsha-gov"
    assert claims["exp"] <= subject["exp"]
    assert claims["name"] == "张三"
    # hunan-province is registered for name and region; changsha-gov's phone is not its
    assert "phone_number" not in claims
    assert "scope" not in claims


def test_a_system_gets_only_what_the_client_could_see_and_masked_unless_privileged(
        gateway_url: str, browser: httpx.Client) -> None:
    signer = DPoPSigner()  # the mini-program binds its tokens to its key
    _, token, _ = full_login(gateway_url, browser, "hunan-miniapp", dpop=signer)
    answer = exchange(gateway_url, token["access_token"], auth=None, dpop=signer,
                      client_id="hunan-miniapp", audience="changsha-zwfw")
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "DPoP"  # the miniapp's tokens are bound
    claims = claims_of(gateway_url, answer.json()["access_token"])
    assert claims["aud"] == "changsha-zwfw"
    assert claims["cnf"] == {"jkt": signer.jkt}
    # the system has name, phone, phone_number_verified, region; the miniapp may see
    # name and phone (verified or not) only, and the system is not privileged: the phone
    # comes masked
    assert {"name", "phone_number", "phone_number_verified"} <= claims.keys()
    assert "region" not in claims
    assert claims["phone_number"] != "13800000001"
    assert "*" in claims["phone_number"]


def test_resource_names_a_system_by_one_of_its_instances(gateway_url: str,
                                                         browser: httpx.Client) -> None:
    _, token, _ = full_login(gateway_url, browser)
    answer = exchange(gateway_url, token["access_token"],
                      resource="http://127.0.0.1:8010/api/items")
    assert answer.status_code == 200, answer.text
    assert claims_of(gateway_url, answer.json()["access_token"])["aud"] == "hunan-province"


def test_the_exchanged_token_is_not_for_userinfo_nor_exchanged_again(
        gateway_url: str, browser: httpx.Client) -> None:
    _, token, _ = full_login(gateway_url, browser)
    exchanged = exchange(gateway_url, token["access_token"],
                         audience="hunan-province").json()["access_token"]
    userinfo = httpx.get(f"{gateway_url}/userinfo",
                         headers={"Authorization": f"Bearer {exchanged}"})
    assert userinfo.status_code == 401
    refused(exchange(gateway_url, exchanged, audience="hunan-province"), "invalid_request")


def test_ending_the_grant_ends_the_exchanged_token(gateway_url: str,
                                                  browser: httpx.Client) -> None:
    _, token, _ = full_login(gateway_url, browser)
    exchanged = exchange(gateway_url, token["access_token"],
                         audience="hunan-province").json()["access_token"]
    api = ("hunan-data-api", SECRETS["hunan-data-api"])
    before = httpx.post(f"{gateway_url}/introspect", auth=api, data={"token": exchanged})
    assert before.json()["active"] is True
    assert before.json()["aud"] == "hunan-province"
    httpx.post(f"{gateway_url}/revoke", auth=CHANGSHA,
               data={"token": token["refresh_token"]}).raise_for_status()
    after = httpx.post(f"{gateway_url}/introspect", auth=api, data={"token": exchanged})
    assert after.json() == {"active": False}
    refused(exchange(gateway_url, token["access_token"], audience="hunan-province"),
            "invalid_request")


@pytest.mark.parametrize(("extra", "error"), [
    ({"audience": "yueyang-zwfw"}, "invalid_target"),  # a system, not one it may have
    ({"audience": "no-such-system"}, "invalid_target"),
    ({"audience": ["hunan-province", "changsha-zwfw"]}, "invalid_target"),
    ({"resource": "http://127.0.0.1:9/elsewhere"}, "invalid_target"),
    ({}, "invalid_target"),
    ({"audience": "hunan-province", "subject_token_type":
      "urn:ietf:params:oauth:token-type:refresh_token"}, "invalid_request"),
    ({"audience": "hunan-province", "requested_token_type":
      "urn:ietf:params:oauth:token-type:id_token"}, "invalid_request"),
    ({"audience": "hunan-province", "actor_token": "x",
      "actor_token_type": ACCESS}, "invalid_request"),
])
def test_bad_exchanges_are_refused_and_change_nothing(
        gateway_url: str, browser: httpx.Client, store: MemoryStore,
        extra: dict[str, Any], error: str) -> None:
    _, token, _ = full_login(gateway_url, browser)
    before = store.snapshot()
    refused(exchange(gateway_url, token["access_token"], **extra), error)
    assert store.snapshot() == before


def test_a_subject_token_must_be_a_live_token_of_ours_for_this_client(
        gateway_url: str, browser: httpx.Client) -> None:
    _, changsha, _ = full_login(gateway_url, browser)
    with httpx.Client(base_url=gateway_url) as other_browser:
        _, miniapp, _ = full_login(gateway_url, other_browser, "hunan-miniapp")
    # another client's token: a system that received it cannot trade it on
    refused(exchange(gateway_url, miniapp["access_token"], audience="hunan-province"),
            "invalid_request")
    for junk in ("", "not-a-jwt", changsha["id_token"], changsha["refresh_token"],
                 changsha["access_token"][:-4] + "AAAA"):
        refused(exchange(gateway_url, junk, audience="hunan-province"), "invalid_request")


def test_a_client_not_allowed_to_exchange_is_unauthorized(gateway_url: str,
                                                          browser: httpx.Client) -> None:
    client, token, _ = full_login(gateway_url, browser, "yueyang-gov")
    with pytest.raises(OAuthError) as caught:
        client.fetch_token(f"{gateway_url}/token", grant_type=EXCHANGE,
                           subject_token=token["access_token"], subject_token_type=ACCESS,
                           audience="yueyang-zwfw")
    assert caught.value.error == "unauthorized_client"


def test_wrong_client_secret_is_invalid_client(gateway_url: str, browser: httpx.Client) -> None:
    _, token, _ = full_login(gateway_url, browser)
    refused(exchange(gateway_url, token["access_token"], auth=("changsha-gov", "wrong"),
                     audience="hunan-province"), "invalid_client")


def test_config_refuses_an_audience_that_is_not_a_system(tmp_path: Path) -> None:
    clients = GOOD_CLIENT + 'token_exchange_audiences = ["no-such-system"]\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "", clients), env={})
    assert "client 'city-a': token_exchange_audiences: 'no-such-system' is not a system" \
        in str(caught.value)
    shipped = load_config(REPO / "config" / "roam.toml", env={})
    changsha = shipped.client("changsha-gov")
    assert changsha is not None
    assert changsha.token_exchange_audiences == ("hunan-province",)
