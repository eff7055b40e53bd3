"""Registered clients that authenticate with their own keys (``private_key_jwt`` with a
``jwks_uri`` served by a local server, rolled over by the client) and that see pairwise
subjects per sector (``sector_identifier_uri`` fetched and checked), through authlib."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.config import Config
from tests.support.gateway import log_in
from tests.support.registration import invite, register
from tests.support.rp import authorize_url
from tests.support.servers import free_port, serve

CALLBACK = "http://127.0.0.1:8041/cb"
OTHER = "http://127.0.0.1:8042/cb"


@dataclass
class ClientSide:
    """What the clients serve: a JWK set and sector identifier documents."""

    keys: list[ECKey] = field(default_factory=list)
    sectors: dict[str, list[str]] = field(default_factory=dict)

    def app(self) -> Starlette:
        async def jwks(request: Request) -> JSONResponse:
            return JSONResponse({"keys": [k.as_dict(private=False) for k in self.keys]},
                                headers={"Cache-Control": "max-age=3600"})

        async def sector(request: Request) -> JSONResponse:
            return JSONResponse(self.sectors.get(request.path_params["name"], []))

        return Starlette(routes=[Route("/jwks.json", jwks),
                                 Route("/sector/{name}.json", sector)])


@pytest.fixture
def client_side() -> Iterator[tuple[ClientSide, int]]:
    side = ClientSide(keys=[ECKey.generate_key("P-256", {"kid": "a"})])
    port = free_port()
    with serve(side.app(), port):
        yield side, port


def keyed(url: str, client_id: str, key: ECKey) -> OAuth2Client:
    client = OAuth2Client(client_id, key, token_endpoint_auth_method="private_key_jwt",
                          redirect_uri=CALLBACK, scope="openid", code_challenge_method="S256")
    client.register_client_auth_method(PrivateKeyJWT(f"{url}/token", alg="ES256",
                                                     headers={"kid": key.kid}))
    return client


def code_flow(url: str, client: OAuth2Client, browser: httpx.Client) -> dict[str, Any]:
    where, verifier = authorize_url(client, url, nonce="n")
    first = browser.get(where)
    callback = first.headers["location"] if first.status_code == 302 else log_in(browser, where)
    return dict(client.fetch_token(f"{url}/token", authorization_response=callback,
                                   code_verifier=verifier))


def subject(url: str, token: dict[str, Any]) -> str:
    keys = KeySet.import_key_set(httpx.get(f"{url}/jwks").json())
    return str(jwt.decode(token["id_token"], keys).claims["sub"])


def test_a_registered_client_proves_itself_with_its_keys_and_rolls_them_over(
        registering_gateway: tuple[str, Config], client_side: tuple[ClientSide, int]) -> None:
    url, config = registering_gateway
    side, port = client_side
    answer = register(url, invite(config), {
        "client_name": "常德市税务应用", "redirect_uris": [CALLBACK], "scope": "openid",
        "token_endpoint_auth_method": "private_key_jwt", "id_token_signed_response_alg":
        "ES256", "jwks_uri": f"http://127.0.0.1:{port}/jwks.json"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert "client_secret" not in body
    first = side.keys[0]
    with httpx.Client(base_url=url) as browser:
        token = code_flow(url, keyed(url, body["client_id"], first), browser)
    second = ECKey.generate_key("P-256", {"kid": "b"})
    side.keys = [second]  # the client rolls over: the gateway meets kid "b" and refetches
    refreshed = keyed(url, body["client_id"], second).refresh_token(
        f"{url}/token", refresh_token=token["refresh_token"])
    assert refreshed["access_token"]
    refused = httpx.post(f"{url}/token", data={
        "grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"],
        "client_id": body["client_id"]})
    assert refused.status_code == 401  # no assertion, no secret: nothing


def test_pairwise_subjects_differ_across_sectors_and_stay_within_one(
        registering_gateway: tuple[str, Config], client_side: tuple[ClientSide, int]) -> None:
    url, config = registering_gateway
    side, port = client_side
    side.sectors = {"a": [CALLBACK], "b": [OTHER, CALLBACK]}

    def pairwise(host: str, name: str, redirect: str) -> dict[str, Any]:
        answer = register(url, invite(config), {
            "client_name": "益阳市政务服务", "redirect_uris": [redirect], "scope": "openid",
            "subject_type": "pairwise",
            "sector_identifier_uri": f"http://{host}:{port}/sector/{name}.json"})
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    in_a = pairwise("127.0.0.1", "a", CALLBACK)
    in_b = pairwise("localhost", "b", OTHER)
    also_a = pairwise("127.0.0.1", "a", CALLBACK)
    missing = register(url, invite(config), {
        "client_name": "益阳市政务服务", "redirect_uris": [OTHER], "scope": "openid",
        "subject_type": "pairwise",
        "sector_identifier_uri": f"http://127.0.0.1:{port}/sector/a.json"})
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_client_metadata"

    def client(answer: dict[str, Any], redirect: str) -> OAuth2Client:
        return OAuth2Client(answer["client_id"], answer["client_secret"], scope="openid",
                            redirect_uri=redirect, code_challenge_method="S256")

    with httpx.Client(base_url=url) as browser:
        sub_a = subject(url, code_flow(url, client(in_a, CALLBACK), browser))
        sub_b = subject(url, code_flow(url, client(in_b, OTHER), browser))
        sub_also_a = subject(url, code_flow(url, client(also_a, CALLBACK), browser))
        again_a = subject(url, code_flow(url, client(in_a, CALLBACK), browser))
    assert sub_a != sub_b
    assert sub_a == sub_also_a == again_a
