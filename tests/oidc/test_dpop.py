"""DPoP (RFC 9449) for the mini-program's client (gateway/oidc/dpop.py)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from gateway.app import create_app
from gateway.store.memory import MemoryStore
from tests.support.dpop import DPoPSigner
from tests.support.gateway import SECRETS, config_on_port, log_in, query
from tests.support.rp import authorize_url, discovery, full_login, rp_client
from tests.support.servers import free_port, serve


def code_for_miniapp(gateway_url: str, browser: httpx.Client) -> tuple[str, str]:
    """A code for hunan-miniapp and its PKCE verifier (the token request is the test's)."""
    client = rp_client("hunan-miniapp", gateway_url)
    url, verifier = authorize_url(client, gateway_url, nonce="n")
    callback = log_in(browser, url) if not browser.cookies else browser.get(url).headers[
        "location"]
    return query(callback)["code"], verifier


def redeem(gateway_url: str, code: str, verifier: str,
           headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{gateway_url}/token", headers=headers or {}, data={
        "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
        "client_id": "hunan-miniapp", "redirect_uri": "http://127.0.0.1:8003/callback"})


def refresh(gateway_url: str, token: str, headers: dict[str, str] | None = None
            ) -> httpx.Response:
    return httpx.post(f"{gateway_url}/token", headers=headers or {}, data={
        "grant_type": "refresh_token", "refresh_token": token, "client_id": "hunan-miniapp"})


def userinfo(gateway_url: str, token: str, proof: str | None, scheme: str = "DPoP"
             ) -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return httpx.get(f"{gateway_url}/userinfo", headers=headers)


def claims_of(gateway_url: str, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(httpx.get(f"{gateway_url}/jwks").json())
    return dict(jwt.decode(token, keys, algorithms=["RS256", "ES256"]).claims)


def dpop_refused(answer: httpx.Response, error: str = "invalid_dpop_proof") -> None:
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == error


def challenged(answer: httpx.Response, error: str) -> None:
    assert answer.status_code == 401, answer.text
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith("DPoP ")
    assert f'error="{error}"' in challenge


@pytest.fixture(scope="module")
def gateway_url(store: MemoryStore) -> Iterator[str]:
    """The shipped config with the mini-program's tokens bound to its key (the demo leaves
    it off): what a deployment sets with ``dpop_bound_access_tokens = true``."""
    port = free_port()
    config = config_on_port(port, clients={"hunan-miniapp": {"dpop_bound_access_tokens": True}})
    with serve(create_app(config, store=store), port) as url:
        yield url


@pytest.fixture
def miniapp(gateway_url: str, browser: httpx.Client) -> tuple[OAuth2Client, dict[str, Any]]:
    client, token, _ = full_login(gateway_url, browser, "hunan-miniapp", dpop=DPoPSigner())
    return client, token


def test_discovery_advertises_dpop(gateway_url: str) -> None:
    assert discovery(gateway_url)["dpop_signing_alg_values_supported"] == ["ES256", "RS256"]


def test_the_miniapp_gets_no_token_without_a_proof_and_the_code_survives(
        gateway_url: str, browser: httpx.Client, store: MemoryStore) -> None:
    code, verifier = code_for_miniapp(gateway_url, browser)
    before = store.snapshot()
    dpop_refused(redeem(gateway_url, code, verifier))
    assert store.snapshot() == before  # nothing consumed: the proof is checked first
    signer = DPoPSigner("RS256")
    answer = redeem(gateway_url, code, verifier,
                    {"DPoP": signer.proof("POST", f"{gateway_url}/token")})
    assert answer.status_code == 200, answer.text


def test_tokens_are_bound_to_the_proof_key(gateway_url: str,
                                           miniapp: tuple[OAuth2Client, dict[str, Any]]
                                           ) -> None:
    client, token = miniapp
    assert token["token_type"] == "DPoP"
    assert claims_of(gateway_url, token["access_token"])["cnf"] == {"jkt": client.dpop.jkt}
    api = ("hunan-data-api", SECRETS["hunan-data-api"])
    introspected = httpx.post(f"{gateway_url}/introspect", auth=api,
                              data={"token": token["access_token"]}).json()
    assert introspected["cnf"] == {"jkt": client.dpop.jkt}


def test_userinfo_takes_a_bound_token_only_with_a_proof_of_its_key(
        gateway_url: str, miniapp: tuple[OAuth2Client, dict[str, Any]]) -> None:
    client, token = miniapp
    access, url = token["access_token"], f"{gateway_url}/userinfo"
    ok = userinfo(gateway_url, access, client.dpop.proof("GET", url, access_token=access))
    assert ok.status_code == 200, ok.text
    assert ok.json()["name"] == "张三"
    # as a plain bearer token: refused, even with a good proof beside it
    challenged(userinfo(gateway_url, access, None, scheme="Bearer"), "invalid_token")
    challenged(userinfo(gateway_url, access, client.dpop.proof("GET", url, access_token=access),
                        scheme="Bearer"), "invalid_token")
    challenged(userinfo(gateway_url, access, None), "invalid_dpop_proof")  # no proof
    thief = DPoPSigner()
    challenged(userinfo(gateway_url, access, thief.proof("GET", url, access_token=access)),
               "invalid_dpop_proof")  # another key
    challenged(userinfo(gateway_url, access, client.dpop.proof("GET", url)),
               "invalid_dpop_proof")  # no ath
    challenged(userinfo(gateway_url, access, client.dpop.proof(
        "GET", url, access_token=access + "x")), "invalid_dpop_proof")  # ath of another
    challenged(userinfo(gateway_url, access, client.dpop.proof(
        "POST", url, access_token=access)), "invalid_dpop_proof")  # htm
    challenged(userinfo(gateway_url, access, client.dpop.proof(
        "GET", f"{gateway_url}/token", access_token=access)), "invalid_dpop_proof")  # htu
    challenged(userinfo(gateway_url, access, client.dpop.proof(
        "GET", url, access_token=access, iat=int(time.time()) - 600)), "invalid_dpop_proof")


def test_a_replayed_proof_is_refused(gateway_url: str,
                                     miniapp: tuple[OAuth2Client, dict[str, Any]]) -> None:
    client, token = miniapp
    access, url = token["access_token"], f"{gateway_url}/userinfo"
    proof = client.dpop.proof("GET", url, access_token=access)
    assert userinfo(gateway_url, access, proof).status_code == 200
    challenged(userinfo(gateway_url, access, proof), "invalid_dpop_proof")


def test_an_unbound_token_is_not_taken_with_the_dpop_scheme(gateway_url: str,
                                                          browser: httpx.Client) -> None:
    _, token, _ = full_login(gateway_url, browser)  # changsha-gov: no DPoP
    url = f"{gateway_url}/userinfo"
    proof = DPoPSigner().proof("GET", url, access_token=token["access_token"])
    challenged(userinfo(gateway_url, token["access_token"], proof), "invalid_token")
    bearer = userinfo(gateway_url, token["access_token"], None, scheme="Bearer")
    assert bearer.status_code == 200


def test_the_refresh_token_is_bound_to_the_key_too(
        gateway_url: str, miniapp: tuple[OAuth2Client, dict[str, Any]]) -> None:
    client, token = miniapp
    url = f"{gateway_url}/token"
    dpop_refused(refresh(gateway_url, token["refresh_token"]))
    stolen = refresh(gateway_url, token["refresh_token"],
                     {"DPoP": DPoPSigner().proof("POST", url)})
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    # the thief's tries retired nothing: the holder of the key refreshes
    rotated = refresh(gateway_url, token["refresh_token"],
                      {"DPoP": client.dpop.proof("POST", url)})
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["token_type"] == "DPoP"
    assert claims_of(gateway_url, body["access_token"])["cnf"] == {"jkt": client.dpop.jkt}
    again = refresh(gateway_url, body["refresh_token"],
                    {"DPoP": DPoPSigner().proof("POST", url)})
    assert again.json()["error"] == "invalid_grant"  # the rotated one is bound as well


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return f"{part(header)}.{part(claims)}."


def test_malformed_proofs_at_token_are_refused(gateway_url: str, browser: httpx.Client,
                                               store: MemoryStore) -> None:
    code, verifier = code_for_miniapp(gateway_url, browser)
    url = f"{gateway_url}/token"
    signer = DPoPSigner()
    claims = {"htm": "POST", "htu": url, "iat": int(time.time()), "jti": "j" * 16}
    public = signer.key.as_dict(private=False)
    bad = [
        signer.proof("GET", url),  # htm
        signer.proof("POST", f"{gateway_url}/userinfo"),  # htu
        signer.proof("POST", url, iat=int(time.time()) - 300),  # stale
        signer.proof("POST", url, iat=int(time.time()) + 300),  # from the future
        signer.proof("POST", url, typ="JWT"),  # not a dpop+jwt
        signer.proof("POST", url, jwk=DPoPSigner().key.as_dict(private=False)),  # not its key
        signer.proof("POST", url, jwk=signer.key.as_dict(private=True)),  # a private key
        _unsigned({"typ": "dpop+jwt", "alg": "none", "jwk": public}, claims),
        _unsigned({"typ": "dpop+jwt", "alg": "HS256", "jwk": public}, claims) + "c2ln",
        "not-a-jwt",
    ]
    before = store.snapshot()
    for proof in bad:
        dpop_refused(redeem(gateway_url, code, verifier, {"DPoP": proof}))
    two = httpx.post(url, headers=[("DPoP", signer.proof("POST", url)),
                                   ("DPoP", signer.proof("POST", url))],
                     data={"grant_type": "authorization_code", "code": code,
                           "code_verifier": verifier, "client_id": "hunan-miniapp",
                           "redirect_uri": "http://127.0.0.1:8003/callback"})
    dpop_refused(two)
    assert store.snapshot() == before


def test_a_confidential_client_may_bind_its_access_tokens(gateway_url: str,
                                                          browser: httpx.Client) -> None:
    signer = DPoPSigner()
    client = rp_client("changsha-gov", gateway_url, dpop=signer)
    url, verifier = authorize_url(client, gateway_url, nonce="n")
    token = client.fetch_token(f"{gateway_url}/token", authorization_response=log_in(
        browser, url), code_verifier=verifier)
    assert token["token_type"] == "DPoP"
    assert claims_of(gateway_url, token["access_token"])["cnf"] == {"jkt": signer.jkt}
    # its refresh token is bound by its client authentication, not to the key
    plain = httpx.post(f"{gateway_url}/token", auth=("changsha-gov", SECRETS["changsha-gov"]),
                       data={"grant_type": "refresh_token",
                             "refresh_token": token["refresh_token"]})
    assert plain.status_code == 200
    assert plain.json()["token_type"] == "Bearer"


# --- on Redis, with server nonces ----------------------------------------------------------


@pytest.fixture
def nonce_gateway(redis_url: str, redis_prefix: str) -> Iterator[str]:
    port = free_port()
    config = config_on_port(port, backend="redis", redis_url=redis_url, prefix=redis_prefix,
                            clients={"hunan-miniapp": {"dpop_bound_access_tokens": True,
                                                       "dpop_nonce": True},
                                     "changsha-gov": {"dpop_bound_access_tokens": True}})
    with serve(create_app(config), port) as url:
        yield url


def test_nonce_flow_and_replay_on_redis(nonce_gateway: str) -> None:
    url = f"{nonce_gateway}/token"
    signer = DPoPSigner()
    with httpx.Client(base_url=nonce_gateway) as browser:
        code, verifier = code_for_miniapp(nonce_gateway, browser)
    first = redeem(nonce_gateway, code, verifier, {"DPoP": signer.proof("POST", url)})
    dpop_refused(first, "use_dpop_nonce")
    nonce = first.headers["dpop-nonce"]
    invented = redeem(nonce_gateway, code, verifier,
                      {"DPoP": signer.proof("POST", url, nonce="made-up-nonce")})
    dpop_refused(invented, "use_dpop_nonce")
    proof = signer.proof("POST", url, nonce=nonce)
    # one proof sent many times at once: one use, whichever request gets there first
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: redeem(nonce_gateway, code, verifier,
                                                 {"DPoP": proof}), range(8)))
    used = [a for a in answers if a.json().get("error") != "invalid_dpop_proof"]
    assert len(used) == 1
    assert used[0].status_code == 200, used[0].text
    assert used[0].json()["token_type"] == "DPoP"


def test_a_confidential_client_that_needs_dpop_is_known_by_its_basic_credentials(
        nonce_gateway: str) -> None:
    with httpx.Client(base_url=nonce_gateway) as browser:
        client = rp_client("changsha-gov", nonce_gateway)  # sends no proof
        url, verifier = authorize_url(client, nonce_gateway, nonce="n")
        callback = log_in(browser, url)
    answer = httpx.post(f"{nonce_gateway}/token", auth=("changsha-gov",
                                                        SECRETS["changsha-gov"]),
                        data={"grant_type": "authorization_code",
                              "code": query(callback)["code"], "code_verifier": verifier,
                              "redirect_uri": "http://127.0.0.1:8001/callback"})
    dpop_refused(answer)


def _bound_token_with_nonce(gateway: str, signer: DPoPSigner) -> str:
    """The mini-program's DPoP-bound access token from a gateway that wants nonces."""
    url = f"{gateway}/token"
    with httpx.Client(base_url=gateway) as browser:
        code, verifier = code_for_miniapp(gateway, browser)
    first = redeem(gateway, code, verifier, {"DPoP": signer.proof("POST", url)})
    dpop_refused(first, "use_dpop_nonce")
    answer = redeem(gateway, code, verifier, {"DPoP": signer.proof(
        "POST", url, nonce=first.headers["dpop-nonce"])})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_resource_endpoints_ask_for_a_nonce_and_take_the_bound_token_with_it(
        nonce_gateway: str) -> None:
    """RFC 9449 §9 at /userinfo and /sso/transfer-ticket: a client that must use nonces
    gets 401 ``use_dpop_nonce`` with one, then is served with a proof carrying it."""
    signer = DPoPSigner()
    access = _bound_token_with_nonce(nonce_gateway, signer)
    url = f"{nonce_gateway}/userinfo"
    asked = userinfo(nonce_gateway, access, signer.proof("GET", url, access_token=access))
    challenged(asked, "use_dpop_nonce")
    nonce = asked.headers["dpop-nonce"]
    served = userinfo(nonce_gateway, access, signer.proof("GET", url, access_token=access,
                                                          nonce=nonce))
    assert served.status_code == 200, served.text
    ticket_url = f"{nonce_gateway}/sso/transfer-ticket"
    target = "http://127.0.0.1:8001/login"
    as_bearer = httpx.post(ticket_url, data={"target": target},
                           headers={"Authorization": f"Bearer {access}"})
    assert as_bearer.status_code == 401  # RFC 9449: a bound token is never a bearer token
    minted = httpx.post(ticket_url, data={"target": target}, headers={
        "Authorization": f"DPoP {access}",
        "DPoP": signer.proof("POST", ticket_url, access_token=access, nonce=nonce)})
    assert minted.status_code == 200, minted.text
    assert minted.json()["transfer_url"].startswith(f"{nonce_gateway}/sso/transfer?")
    stolen = httpx.post(ticket_url, data={"target": target}, headers={
        "Authorization": f"DPoP {access}",
        "DPoP": DPoPSigner().proof("POST", ticket_url, access_token=access, nonce=nonce)})
    challenged(stolen, "invalid_dpop_proof")
