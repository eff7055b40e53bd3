"""Revocation (RFC 7009) and introspection (RFC 7662), through authlib's client."""

from __future__ import annotations

import httpx
import pytest
from authlib.integrations.base_client import OAuthError

from gateway.store.memory import MemoryStore
from tests.support.gateway import SECRETS
from tests.support.rp import discovery, full_login

API = ("hunan-data-api", SECRETS["hunan-data-api"])


def introspect(gateway_url: str, token: str, auth: tuple[str, str] = API,
               **extra: str) -> httpx.Response:
    return httpx.post(f"{gateway_url}/introspect", data={"token": token, **extra}, auth=auth)


def test_discovery_advertises_both_endpoints(gateway_url: str) -> None:
    meta = discovery(gateway_url)
    assert meta["revocation_endpoint"] == f"{gateway_url}/revoke"
    assert meta["introspection_endpoint"] == f"{gateway_url}/introspect"


def test_introspection_of_live_tokens(gateway_url: str, browser: httpx.Client) -> None:
    client, token, _ = full_login(gateway_url, browser)
    body = client.introspect_token(f"{gateway_url}/introspect",
                                   token=token["access_token"]).json()
    assert body["active"] is True
    assert body["client_id"] == "changsha-gov"
    assert body["sub"] == "c-0001"
    assert body["token_type"] == "access_token"
    assert body["scope"] == "openid profile phone"
    assert body["exp"] > body["iat"]
    refresh = introspect(gateway_url, token["refresh_token"],
                         token_type_hint="refresh_token").json()
    assert refresh["active"] is True
    assert refresh["token_type"] == "refresh_token"


def test_clients_introspect_only_their_own_tokens(gateway_url: str,
                                                  browser: httpx.Client) -> None:
    _, token, _ = full_login(gateway_url, browser)
    other = introspect(gateway_url, token["access_token"],
                       auth=("yueyang-gov", SECRETS["yueyang-gov"]))
    # yueyang-gov registered client_secret_post: basic auth is refused outright
    assert other.status_code == 401
    other = httpx.post(f"{gateway_url}/introspect", data={
        "token": token["access_token"], "client_id": "yueyang-gov",
        "client_secret": SECRETS["yueyang-gov"]})
    assert other.json() == {"active": False}


def test_public_clients_cannot_introspect(gateway_url: str, browser: httpx.Client) -> None:
    _, token, _ = full_login(gateway_url, browser)
    response = httpx.post(f"{gateway_url}/introspect", data={
        "token": token["access_token"], "client_id": "hunan-miniapp"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_introspection_of_garbage_is_inactive(gateway_url: str) -> None:
    for token in ("nonsense", "a.b.c", "eyJhbGciOiJub25lIn0.e30."):
        assert introspect(gateway_url, token).json() == {"active": False}


def test_revoking_the_refresh_token_ends_the_grant(gateway_url: str,
                                                   browser: httpx.Client) -> None:
    client, token, _ = full_login(gateway_url, browser)
    response = client.revoke_token(f"{gateway_url}/revoke", token=token["refresh_token"],
                                   token_type_hint="refresh_token")
    assert response.status_code == 200
    assert introspect(gateway_url, token["refresh_token"]).json() == {"active": False}
    assert introspect(gateway_url, token["access_token"]).json() == {"active": False}
    with pytest.raises(OAuthError) as refused:
        client.refresh_token(f"{gateway_url}/token", refresh_token=token["refresh_token"])
    assert refused.value.error == "invalid_grant"


def test_revoking_an_access_token_spares_the_grant(gateway_url: str,
                                                   browser: httpx.Client) -> None:
    client, token, _ = full_login(gateway_url, browser)
    response = client.revoke_token(f"{gateway_url}/revoke", token=token["access_token"],
                                   token_type_hint="access_token")
    assert response.status_code == 200
    assert introspect(gateway_url, token["access_token"]).json() == {"active": False}
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert httpx.get(f"{gateway_url}/userinfo", headers=bearer).status_code == 401
    refreshed = client.refresh_token(f"{gateway_url}/token",
                                     refresh_token=token["refresh_token"])
    assert introspect(gateway_url, refreshed["access_token"]).json()["active"] is True


def test_refresh_reuse_shows_as_inactive(gateway_url: str, browser: httpx.Client) -> None:
    client, token, _ = full_login(gateway_url, browser)
    between = client.refresh_token(f"{gateway_url}/token",
                                   refresh_token=token["refresh_token"])
    # a rotated token is not active, even within the reuse window
    assert introspect(gateway_url, token["refresh_token"]).json() == {"active": False}
    rotated = client.refresh_token(f"{gateway_url}/token",
                                   refresh_token=between["refresh_token"])
    with pytest.raises(OAuthError):  # two rotations back: a replay
        client.refresh_token(f"{gateway_url}/token", refresh_token=token["refresh_token"])
    for dead in (rotated["refresh_token"], rotated["access_token"], token["access_token"]):
        assert introspect(gateway_url, dead).json() == {"active": False}


def test_revoking_an_unknown_token_is_fine_and_changes_nothing(
        gateway_url: str, store: MemoryStore) -> None:
    before = store.snapshot()
    response = httpx.post(f"{gateway_url}/revoke", data={"token": "never-issued"},
                          auth=("changsha-gov", SECRETS["changsha-gov"]))
    assert response.status_code == 200
    assert store.snapshot() == before


def test_revoking_another_clients_token_is_refused(gateway_url: str, browser: httpx.Client,
                                                   store: MemoryStore) -> None:
    _, token, _ = full_login(gateway_url, browser)
    before = store.snapshot()
    response = httpx.post(f"{gateway_url}/revoke", data={
        "token": token["refresh_token"], "client_id": "yueyang-gov",
        "client_secret": SECRETS["yueyang-gov"]})
    assert response.status_code == 400
    assert store.snapshot() == before
    assert introspect(gateway_url, token["refresh_token"]).json()["active"] is True


def test_revocation_needs_client_authentication(gateway_url: str, browser: httpx.Client) -> None:
    _, token, _ = full_login(gateway_url, browser)
    response = httpx.post(f"{gateway_url}/revoke", data={"token": token["refresh_token"]},
                          auth=("changsha-gov", "wrong"))
    assert response.status_code == 401
    assert introspect(gateway_url, token["refresh_token"]).json()["active"] is True


def test_public_client_revokes_its_own_token(gateway_url: str, browser: httpx.Client) -> None:
    client, token, _ = full_login(gateway_url, browser, "hunan-miniapp")
    response = client.revoke_token(f"{gateway_url}/revoke", token=token["refresh_token"])
    assert response.status_code == 200
    assert introspect(gateway_url, token["refresh_token"]).json() == {"active": False}


