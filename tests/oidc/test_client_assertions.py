"""``private_key_jwt`` (gateway/oidc/client_assertions.py) through authlib's own client
auth method, with the client's keys served at a ``jwks_uri`` by a local server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.app import create_app
from gateway.config import ClientConfig, OutboundSection
from gateway.oidc.client_assertions import ASSERTION_TYPE, AssertionRefused, ClientKeys
from gateway.oidc.clients import Client
from gateway.outbound import OutboundPolicy
from gateway.store.memory import MemoryStore
from tests.support.gateway import config_on_port, log_in
from tests.support.rp import authorize_url
from tests.support.servers import free_port, serve

CLIENT_ID = "keyed-gov"
CALLBACK = "http://127.0.0.1:8009/callback"


@dataclass
class KeyServer:
    """The client's ``jwks_uri``: its public keys, and how many times they were fetched."""

    keys: list[ECKey | RSAKey] = field(default_factory=list)
    fetches: int = 0

    def app(self) -> Starlette:
        async def jwks(request: Request) -> JSONResponse:
            self.fetches += 1
            return JSONResponse({"keys": [k.as_dict(private=False) for k in self.keys]},
                                headers={"Cache-Control": "public, max-age=3600"})

        return Starlette(routes=[Route("/jwks.json", jwks)])


@pytest.fixture(scope="module")
def key_server() -> Iterator[tuple[KeyServer, str]]:
    server = KeyServer(keys=[ECKey.generate_key("P-256", {"kid": "k1"})])
    with serve(server.app()) as url:
        yield server, url


@pytest.fixture(scope="module")
def keyed_gateway(key_server: tuple[KeyServer, str]) -> Iterator[str]:
    _, key_url = key_server
    port = free_port()
    base = config_on_port(port)
    keyed = ClientConfig.model_validate({
        "client_id": CLIENT_ID, "client_name": "株洲市政务服务（密钥认证）",
        "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": f"{key_url}/jwks.json", "id_token_signed_response_alg": "ES256",
        "grant_types": ["authorization_code", "refresh_token"]})
    config = base.revised(clients=(*base.clients, keyed))
    with serve(create_app(config, store=MemoryStore()), port) as url:
        yield url


def keyed_client(gateway: str, key: ECKey | RSAKey, alg: str = "ES256") -> OAuth2Client:
    client = OAuth2Client(CLIENT_ID, key, token_endpoint_auth_method="private_key_jwt",
                          revocation_endpoint_auth_method="private_key_jwt",
                          redirect_uri=CALLBACK, scope="openid", code_challenge_method="S256")
    client.register_client_auth_method(PrivateKeyJWT(f"{gateway}/token", alg=alg,
                                                     headers={"kid": key.kid}))
    return client


def log_in_and_redeem(gateway: str, client: OAuth2Client) -> dict[str, Any]:
    with httpx.Client(base_url=gateway) as browser:
        url, verifier = authorize_url(client, gateway, nonce="n")
        callback = log_in(browser, url)
    return dict(client.fetch_token(f"{gateway}/token", authorization_response=callback,
                                   code_verifier=verifier))


def assertion(key: Any, alg: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": "", "iat": now, "exp": now + 60,
            "jti": f"jti-{time.monotonic_ns()}", **claims}
    return jwt.encode({"alg": alg, "kid": getattr(key, "kid", None) or "k1"}, body, key)


def token_form(gateway: str, client_assertion: str) -> httpx.Response:
    return httpx.post(f"{gateway}/token", data={
        "grant_type": "refresh_token", "refresh_token": "not-a-token",
        "client_assertion_type": ASSERTION_TYPE, "client_assertion": client_assertion})


def test_a_client_authenticates_with_its_key_and_rolls_it_over(
        keyed_gateway: str, key_server: tuple[KeyServer, str]) -> None:
    server, _ = key_server
    first = server.keys[0]
    token = log_in_and_redeem(keyed_gateway, keyed_client(keyed_gateway, first))
    assert token["token_type"] == "Bearer"
    fetched = server.fetches
    # refreshes with the kept keys: no fetch per request
    client = keyed_client(keyed_gateway, first)
    refreshed = client.refresh_token(f"{keyed_gateway}/token",
                                     refresh_token=token["refresh_token"])
    assert server.fetches == fetched
    # the client rolls its key over: the gateway meets an unknown kid and fetches once
    second = ECKey.generate_key("P-256", {"kid": "k2"})
    server.keys = [second, first]
    rolled = keyed_client(keyed_gateway, second).refresh_token(
        f"{keyed_gateway}/token", refresh_token=refreshed["refresh_token"])
    assert "access_token" in rolled
    assert server.fetches == fetched + 1


def test_an_assertion_is_no_proof_twice_nor_for_another_audience(
        keyed_gateway: str, key_server: tuple[KeyServer, str]) -> None:
    server, _ = key_server
    key = server.keys[0]
    once = assertion(key, "ES256", aud=f"{keyed_gateway}/token")
    first = token_form(keyed_gateway, once)
    assert first.json()["error"] == "invalid_grant", first.text  # authenticated; bad token
    replayed = token_form(keyed_gateway, once)
    assert replayed.status_code == 401
    assert replayed.json()["error"] == "invalid_client"
    for bad in (assertion(key, "ES256", aud="https://elsewhere.example/token"),
                assertion(key, "ES256", aud=keyed_gateway, exp=int(time.time()) + 7200),
                assertion(key, "ES256", aud=keyed_gateway, exp=int(time.time()) - 120),
                assertion(key, "ES256", aud=keyed_gateway, iss="changsha-gov"),
                assertion(key, "ES256", aud=keyed_gateway, jti=None)):
        answer = token_form(keyed_gateway, bad)
        assert answer.json()["error"] == "invalid_client", answer.text


def test_none_and_hmac_assertions_always_fail(keyed_gateway: str,
                                              key_server: tuple[KeyServer, str]) -> None:
    server, _ = key_server
    public = server.keys[0].as_dict(private=False)
    # HMAC with the public key's JSON as the secret: the RSA/EC-as-HMAC trick
    forged = jwt.encode({"alg": "HS256", "kid": "k1"}, {
        "iss": CLIENT_ID, "sub": CLIENT_ID, "aud": keyed_gateway, "jti": "forged-jti-1",
        "exp": int(time.time()) + 60}, OctKey.import_key(str(public).encode()),
        algorithms=["HS256"])
    _, payload, _ = forged.split(".")
    unsigned = f"eyJhbGciOiJub25lIn0.{payload}."
    for bad in (forged, unsigned, "not.a.jwt", ""):
        answer = token_form(keyed_gateway, bad)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "invalid_client"
    # the right key type only: an RSA key named k1 cannot stand in
    rsa = RSAKey.generate_key(2048, {"kid": "k1"})
    answer = token_form(keyed_gateway, assertion(rsa, "RS256", aud=keyed_gateway))
    assert answer.json()["error"] == "invalid_client"


def test_junk_kids_fetch_the_clients_keys_once_not_each_time(
        keyed_gateway: str, key_server: tuple[KeyServer, str]) -> None:
    server, _ = key_server
    stranger = ECKey.generate_key("P-256", {"kid": "junk"})
    before = server.fetches
    for _ in range(3):
        answer = token_form(keyed_gateway, assertion(stranger, "ES256", aud=keyed_gateway))
        assert answer.json()["error"] == "invalid_client"
    # one forced fetch at most in REFETCH_EVERY (none if the rollover above just made one)
    assert server.fetches - before <= 1


async def test_a_jwks_uri_on_a_special_address_is_never_fetched(
        key_server: tuple[KeyServer, str]) -> None:
    server, url = key_server
    keyed = ClientConfig.model_validate({
        "client_id": CLIENT_ID, "client_name": "x", "redirect_uris": [CALLBACK],
        "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": f"{url}/jwks.json"})
    before = server.fetches
    async with httpx.AsyncClient() as http:  # production's guard: no network allowed
        keys = ClientKeys(http, OutboundPolicy(OutboundSection()))
        with pytest.raises(AssertionRefused, match="outbound guard"):
            await keys.key_set(Client(keyed))
    assert server.fetches == before


def test_a_keyed_client_is_configured_with_keys_and_no_secret() -> None:
    base = {"client_id": CLIENT_ID, "client_name": "x", "redirect_uris": [CALLBACK],
            "token_endpoint_auth_method": "private_key_jwt"}
    assert ClientConfig.model_validate(base).consistency_problems() == [
        "private_key_jwt: give the client's keys as jwks or jwks_uri, one of them"]
    with_secret = ClientConfig.model_validate({**base, "jwks_uri": "https://k.example/jwks",
                                               "client_secret_sha256": "0" * 64})
    assert with_secret.consistency_problems() == [
        "private_key_jwt: the client has keys, not a secret (no client_secret_sha256)"]
    stray = ClientConfig.model_validate({
        **base, "token_endpoint_auth_method": "client_secret_basic",
        "client_secret_sha256": "0" * 64, "jwks_uri": "https://k.example/jwks"})
    assert stray.consistency_problems() == [
        "jwks and jwks_uri are for token_endpoint_auth_method 'private_key_jwt'"]


def test_a_keyed_client_introspects_and_revokes_its_tokens_with_its_key(
        keyed_gateway: str, key_server: tuple[KeyServer, str]) -> None:
    server, _ = key_server
    key = server.keys[0]
    token = log_in_and_redeem(keyed_gateway, keyed_client(keyed_gateway, key))
    client = keyed_client(keyed_gateway, key)
    looked = client.introspect_token(f"{keyed_gateway}/introspect",
                                     token=token["access_token"])
    assert looked.status_code == 200, looked.text
    assert looked.json()["active"] is True
    assert looked.json()["client_id"] == CLIENT_ID
    revoked = client.revoke_token(f"{keyed_gateway}/revoke", token=token["refresh_token"],
                                  token_type_hint="refresh_token")
    assert revoked.status_code == 200, revoked.text
    after = client.introspect_token(f"{keyed_gateway}/introspect",
                                    token=token["access_token"])
    assert after.json()["active"] is False, "the grant went with its refresh token"
    # an assertion replayed at introspection is refused too
    once = assertion(key, "ES256", aud=keyed_gateway)
    for _ in range(2):
        answer = httpx.post(f"{keyed_gateway}/introspect", data={
            "token": token["access_token"], "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": once})
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


def test_a_key_set_with_an_unknown_curve_is_no_key_set() -> None:
    """joserfc raises KeyError for a curve it does not know: refused as any bad set (the
    client hears invalid_client), never a 500."""
    from gateway.oidc.client_assertions import _import

    with pytest.raises(ValueError, match="P-999"):
        _import({"keys": [{"kty": "EC", "crv": "P-999", "x": "AA", "y": "AA"}]})
