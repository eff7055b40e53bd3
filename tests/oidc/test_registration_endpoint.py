"""Dynamic client registration (RFC 7591) and its management (RFC 7592) on a gateway over
the test Redis: an operator's invitation, a registration, a login through authlib's
client, an update, a secret rotation with its overlap, a deletion — and every error of
RFC 7591 §3.2.2 in its format, changing nothing."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import ECKey

from gateway.app import create_app
from gateway.config import Config
from gateway.oidc.client_directory import ClientDirectory
from gateway.oidc.client_review import ClientReview, ReviewRefused
from gateway.oidc.clients import ClientRegistry
from gateway.wiring.parts import configured_store
from tests.support.cli import roam
from tests.support.gateway import SECRETS, audit_file, log_in
from tests.support.registration import (
    CALLBACK,
    OVERLAP,
    invite,
    managed,
    metadata,
    register,
    registration_config,
)
from tests.support.rp import authorize_url, validate_id_token
from tests.support.servers import free_port, serve

MOVED = "http://127.0.0.1:8012/back"


def rp(url: str, answer: dict[str, Any], secret: str | None = None,
       redirect_uri: str = CALLBACK) -> OAuth2Client:
    return OAuth2Client(answer["client_id"], secret or answer["client_secret"],
                        token_endpoint_auth_method="client_secret_basic",
                        redirect_uri=redirect_uri, scope="openid profile",
                        code_challenge_method="S256")


def log_in_with(url: str, client: OAuth2Client) -> dict[str, Any]:
    with httpx.Client(base_url=url) as browser:
        where, verifier = authorize_url(client, url, nonce="n-1")
        callback = log_in(browser, where)
    return dict(client.fetch_token(f"{url}/token", authorization_response=callback,
                                   code_verifier=verifier))


def userinfo(url: str, token: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.get(f"{url}/userinfo",
                       headers={"Authorization": f"Bearer {token['access_token']}"})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def introspect(url: str, token: str) -> dict[str, Any]:
    answer = httpx.post(f"{url}/introspect", data={"token": token},
                        auth=("hunan-data-api", SECRETS["hunan-data-api"]))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_system_registers_logs_in_updates_rotates_and_deletes(
        registering_gateway: tuple[str, Config]) -> None:
    url, config = registering_gateway
    assert httpx.get(f"{url}/.well-known/openid-configuration").json()[
        "registration_endpoint"] == f"{url}/register"
    created = register(url, invite(config), metadata())
    assert created.status_code == 201, created.text
    answer = created.json()
    assert created.headers["cache-control"] == "no-store"
    assert answer["client_id"].startswith("rp-")
    assert answer["client_secret"]
    assert answer["roam_status"] == "active"
    assert answer["client_secret_expires_at"] == 0
    assert answer["redirect_uris"] == [CALLBACK]
    assert answer["client_name"] == "湘潭市政务服务网"

    token = log_in_with(url, rp(url, answer))
    validate_id_token(url, token["id_token"], answer["client_id"], "n-1")
    assert userinfo(url, token)["name"]  # profile was approved at once: not sensitive

    # RFC 7592 read: a new registration access token each time; the old one is spent
    read = managed("GET", answer)
    assert read.status_code == 200, read.text
    assert read.json()["registration_access_token"] != answer["registration_access_token"]
    assert "client_secret" not in read.json()  # only its digest is kept
    assert managed("GET", answer).status_code == 401
    answer = {**answer, **read.json()}

    # update: the new redirect URI works, the old one is refused
    body = {k: v for k, v in answer.items() if k not in (
        "registration_access_token", "registration_client_uri", "client_id_issued_at",
        "client_secret_expires_at", "client_secret", "roam_status", "roam_awaiting_approval")}
    updated = managed("PUT", answer, json={**body, "redirect_uris": [MOVED]})
    assert updated.status_code == 200, updated.text
    answer = {**answer, **updated.json()}
    assert answer["redirect_uris"] == [MOVED]
    old_way, _ = authorize_url(rp(url, answer), url)
    refused = httpx.get(old_way)
    assert refused.status_code == 400
    assert "回调地址未登记" in refused.text
    token = log_in_with(url, rp(url, answer, redirect_uri=MOVED))

    # the gateway makes a new secret; the old one works for the overlap, then not
    rotated = httpx.post(f"{answer['registration_client_uri']}/secret", headers={
        "Authorization": f"Bearer {answer['registration_access_token']}"})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["client_secret"]
    answer = {**answer, "registration_access_token": rotated.json()[
        "registration_access_token"]}
    old = rp(url, answer, redirect_uri=MOVED)
    token = dict(old.refresh_token(f"{url}/token", refresh_token=token["refresh_token"]))
    time.sleep(OVERLAP + 0.5)
    with pytest.raises(OAuthError) as failed:
        old.refresh_token(f"{url}/token", refresh_token=token["refresh_token"])
    assert failed.value.error == "invalid_client"
    new = rp(url, answer, secret=new_secret, redirect_uri=MOVED)
    token = dict(new.refresh_token(f"{url}/token", refresh_token=token["refresh_token"]))
    assert introspect(url, token["access_token"])["active"] is True

    # delete: its tokens stop being active, it cannot authenticate, its token is spent
    assert managed("DELETE", answer).status_code == 204
    assert introspect(url, token["access_token"])["active"] is False
    assert introspect(url, token["refresh_token"])["active"] is False
    with pytest.raises(OAuthError) as failed:
        new.refresh_token(f"{url}/token", refresh_token=token["refresh_token"])
    assert failed.value.error == "invalid_client"
    assert managed("GET", answer).status_code == 401

    trail = audit_file(int(url.rsplit(":", 1)[1]))
    deadline = time.monotonic() + 10  # the trail is written in batches, off the request
    while '"client.delete"' not in trail.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    events = [line for line in trail.read_text().splitlines() if '"client.' in line]
    for action in ("client.register", "client.update", "client.secret.rotate",
                   "client.delete"):
        assert any(f'"{action}"' in line for line in events), action
    assert not any(new_secret in line for line in events)


def test_a_pending_registration_can_do_nothing_until_an_operator_approves_it(
        registering_gateway: tuple[str, Config], redis_url: str, redis_prefix: str) -> None:
    url, config = registering_gateway
    answer = register(url, invite(config), metadata(
        scope="openid profile id_card", default_acr_values=["L3"])).json()
    assert answer["roam_status"] == "pending"
    assert answer["roam_awaiting_approval"] == {"claims": ["id_number"], "levels": ["L3"]}
    where, _ = authorize_url(rp(url, answer), url)
    page = httpx.get(where)
    assert page.status_code == 400
    assert "未知的应用" in page.text
    denied = httpx.post(f"{url}/token", data={"grant_type": "refresh_token",
                                                "refresh_token": "x"},
                        auth=(answer["client_id"], answer["client_secret"]))
    assert denied.status_code == 401
    assert denied.json()["error"] == "invalid_client"
    # the management endpoint still serves it (read, update, delete)
    read = managed("GET", answer)
    assert read.status_code == 200
    assert read.json()["roam_status"] == "pending"
    answer = {**answer, **read.json()}

    env = {"ROAM_STORE_BACKEND": "redis", "ROAM_STORE_REDIS_URL": redis_url,
           "ROAM_STORE_PREFIX": redis_prefix, "ROAM_AUDIT_PATH": str(audit_file(0))}
    listed = roam("clients", "pending", env=env)
    assert listed.returncode == 0
    assert answer["client_id"] in listed.stdout
    assert "id_number" in listed.stdout
    # the operator approves it narrowed: no ID number, level L2
    approved = roam("clients", "approve", answer["client_id"], "--scopes", "openid,profile",
                    "--level", "L2", "--reason", "经办不需要身份证号", "--by", "ops-li",
                    env=env)
    assert approved.returncode == 0, approved.stderr
    assert roam("clients", "pending", env=env).stdout.strip() == (
        "no registration waits for a decision")
    token = log_in_with(url, rp(url, answer))
    claims = validate_id_token(url, token["id_token"], answer["client_id"], "n-1")
    assert claims["acr"] in ("L1", "L2")
    assert userinfo(url, token)["name"]
    assert "id_number" not in userinfo(url, token)
    record = managed("GET", answer).json()
    assert record["scope"] == "openid profile"
    assert record["roam_awaiting_approval"] == {}
    trail = audit_file(0).read_text()
    assert '"client.approve"' in trail
    assert "ops-li" in trail
    assert "经办不需要身份证号" in trail


def test_a_pending_registration_asking_less_becomes_active_by_itself(
        registering_gateway: tuple[str, Config]) -> None:
    url, config = registering_gateway
    answer = register(url, invite(config), metadata(scope="openid profile phone")).json()
    assert answer["roam_status"] == "pending"
    body = {"client_id": answer["client_id"], "client_name": answer["client_name"],
            "redirect_uris": answer["redirect_uris"], "scope": "openid profile"}
    updated = managed("PUT", answer, json=body)
    assert updated.status_code == 200, updated.text
    assert updated.json()["roam_status"] == "active"
    assert updated.json()["roam_awaiting_approval"] == {}
    too_big = managed("PUT", {**answer, **updated.json()},
                      content=b'{"a": "' + b"x" * 70_000 + b'"}',
                      headers={"Content-Type": "application/json"})
    assert too_big.status_code == 400, too_big.text
    assert too_big.json()["error"] == "invalid_client_metadata"
    odd = httpx.get(f"{url}/register/%7Bsession:x%7D", headers={
        "Authorization": f"Bearer {updated.json()['registration_access_token']}"})
    assert odd.status_code == 401


def test_a_rejected_registration_stays_refused(
        registering_gateway: tuple[str, Config], redis_url: str, redis_prefix: str) -> None:
    url, config = registering_gateway
    answer = register(url, invite(config), metadata(scope="openid phone")).json()
    assert answer["roam_status"] == "pending"
    env = {"ROAM_STORE_BACKEND": "redis", "ROAM_STORE_REDIS_URL": redis_url,
           "ROAM_STORE_PREFIX": redis_prefix, "ROAM_AUDIT_PATH": str(audit_file(1))}
    assert roam("clients", "reject", answer["client_id"], "--reason", "用途不明",
                env=env).returncode == 0
    again = roam("clients", "approve", answer["client_id"], "--reason", "改主意", env=env)
    assert again.returncode == 2
    assert "rejected" in again.stderr
    assert managed("GET", answer).json()["roam_status"] == "rejected"
    where, _ = authorize_url(rp(url, answer), url)
    assert "未知的应用" in httpx.get(where).text


def statement(key: ECKey, issuer: str, **claims: Any) -> str:
    return jwt.encode({"alg": "ES256", "kid": key.kid}, {"iss": issuer, **claims}, key)


@pytest.mark.parametrize(("body", "error"), [
    (metadata(redirect_uris=[]), "invalid_redirect_uri"),
    (metadata(redirect_uris=["http://city.example.cn/cb"]), "invalid_redirect_uri"),
    (metadata(redirect_uris=["https://city.example.cn/cb#top"]), "invalid_redirect_uri"),
    (metadata(client_name="Xiangtan portal"), "invalid_client_metadata"),
    (metadata(scope="openid everything"), "invalid_client_metadata"),
    (metadata(claims=["id_number"]), "invalid_client_metadata"),  # not in its scopes
    (metadata(grant_types=["implicit"]), "invalid_client_metadata"),
    (metadata(token_endpoint_auth_method="client_secret_jwt"), "invalid_client_metadata"),
    (metadata(id_token_signed_response_alg="HS256"), "invalid_client_metadata"),
    (metadata(backchannel_logout_uri="http://10.0.0.7/logout"), "invalid_client_metadata"),
    (metadata(backchannel_logout_uri="https://169.254.169.254/x"), "invalid_client_metadata"),
    (metadata(token_endpoint_auth_method="private_key_jwt"), "invalid_client_metadata"),
    (metadata(contacts="ops"), "invalid_client_metadata"),
    (metadata(token_endpoint_auth_method="private_key_jwt", jwks={"keys": [
        {"kty": "EC", "crv": "P-999", "x": "AA", "y": "AA"}]}), "invalid_client_metadata"),
    (metadata(redirect_uris=["https://city.example.cn:99999/cb"]), "invalid_redirect_uri"),
    (metadata(redirect_uris=["https://city.example.cn:abc/cb"]), "invalid_redirect_uri"),
    (metadata(software_statement="not-a-jwt"), "invalid_software_statement"),
    (metadata(software_statement=statement(ECKey.generate_key("P-256", {"kid": "x"}),
                                           "https://unknown.example.cn")),
     "unapproved_software_statement"),
])
def test_every_registration_error_is_answered_in_its_format_and_changes_nothing(
        registering_gateway: tuple[str, Config], body: dict[str, Any], error: str) -> None:
    url, config = registering_gateway
    token = invite(config)  # single use
    refused = register(url, token, body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == error
    assert refused.json()["error_description"]
    assert refused.headers["cache-control"] == "no-store"
    assert register(url, token, metadata()).status_code == 201  # its use was not taken


def test_without_a_good_initial_access_token_nothing_registers(
        registering_gateway: tuple[str, Config]) -> None:
    url, config = registering_gateway
    for headers in ({}, {"Authorization": "Bearer made-up"}, {"Authorization": "Basic eDp5"}):
        refused = httpx.post(f"{url}/register", json=metadata(), headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_token"
        # RFC 6750 §3.1: an error code in the challenge only for a token that was sent
        sent = headers.get("Authorization", "").startswith("Bearer ")
        assert ('error="invalid_token"' in refused.headers["www-authenticate"]) is sent
    not_json = httpx.post(f"{url}/register", content=b"[1]", headers={
        "Authorization": f"Bearer {invite(config)}", "Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert not_json.json()["error"] == "invalid_client_metadata"


def test_a_single_use_invitation_and_a_registration_token_each_win_once(
        registering_gateway: tuple[str, Config]) -> None:
    url, config = registering_gateway
    token = invite(config)
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: register(url, token, metadata()).status_code,
                              range(8)))
    assert sorted(codes) == [201] + [401] * 7
    answer = register(url, invite(config), metadata()).json()
    with ThreadPoolExecutor(8) as pool:
        reads = list(pool.map(lambda _: managed("GET", answer).status_code, range(8)))
    assert sorted(reads) == [200] + [401] * 7


def test_a_software_statement_from_a_trusted_issuer_takes_precedence(
        redis_url: str, redis_prefix: str, tmp_path: Any) -> None:
    key = ECKey.generate_key("P-256", {"kid": "province-1"})
    keys = tmp_path / "statement-keys.json"
    keys.write_text(httpx.Response(200, json={"keys": [key.as_dict(private=False)]}).text)
    port = free_port()
    config = registration_config(port, redis_url, redis_prefix, software_statement_issuers={
        "https://zwfw.hunan.gov.cn": str(keys)})
    with serve(create_app(config), port) as url:
        signed = statement(key, "https://zwfw.hunan.gov.cn", client_name="株洲市不动产登记",
                           software_id="hunan-bdc", scope="openid")
        answer = register(url, invite(config), metadata(software_statement=signed))
        assert answer.status_code == 201, answer.text
        assert answer.json()["client_name"] == "株洲市不动产登记"
        assert answer.json()["scope"] == "openid"
        assert answer.json()["software_id"] == "hunan-bdc"
        forged = statement(ECKey.generate_key("P-256", {"kid": "province-1"}),
                           "https://zwfw.hunan.gov.cn", client_name="伪造")
        refused = register(url, invite(config), metadata(software_statement=forged))
        assert refused.json()["error"] == "invalid_software_statement"


def test_an_operator_approves_only_the_request_they_saw(
        registering_gateway: tuple[str, Config]) -> None:
    """A decision names the request's revision: the client reading its registration (a
    token rotation) does not change it; asking anew does, and the old look approves
    nothing."""
    url, config = registering_gateway

    async def review(act: str, client_id: str, seen: int | None = None) -> Any:
        store = configured_store(config)
        try:
            clients = ClientReview(ClientDirectory(store, ClientRegistry([])))
            if act == "look":
                return next(c["version"] for c in await clients.listing()
                            if c["client_id"] == client_id)
            return await clients.approve(client_id, by="ops-zhao", reason="看过", seen=seen)
        finally:
            await store.close()

    first = register(url, invite(config), metadata(scope="openid profile phone")).json()
    second = register(url, invite(config), metadata(scope="openid profile phone")).json()
    seen_first = asyncio.run(review("look", first["client_id"]))
    seen_second = asyncio.run(review("look", second["client_id"]))
    assert managed("GET", first).status_code == 200  # a new access token, same request
    assert asyncio.run(review("approve", first["client_id"], seen_first)).status == "active"
    body = {"client_id": second["client_id"], "client_name": second["client_name"],
            "redirect_uris": second["redirect_uris"], "scope": "openid profile phone id_card"}
    assert managed("PUT", second, json=body).status_code == 200  # it asks for more meanwhile
    with pytest.raises(ReviewRefused, match="changed its request"):
        asyncio.run(review("approve", second["client_id"], seen_second))
