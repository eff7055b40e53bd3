"""Pairwise subjects (gateway/oidc/subjects.py, OIDC Core §8): each sector sees its own
``sub``, stable across logins, the same in everything its client is told."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from gateway.app import create_app
from gateway.config import ClientConfig
from gateway.digests import KeyedDigests
from gateway.oidc.clients import ClientRegistry
from gateway.oidc.subjects import Subjects
from gateway.store.memory import MemoryStore
from tests.support.gateway import SECRETS, config_on_port
from tests.support.receiver import Receiver
from tests.support.rp import authorize_url, full_login, rp_client, validate_id_token
from tests.support.servers import free_port, serve

SUBJECT = "c-0001"  # the demo citizen's own sub


def client(client_id: str, **fields: Any) -> ClientConfig:
    return ClientConfig.model_validate({
        "client_id": client_id, "client_name": client_id, "client_secret_sha256": "0" * 64,
        "redirect_uris": ["https://a.example/cb"], **fields})


def test_a_pairwise_sub_belongs_to_its_sector_alone() -> None:
    digests = KeyedDigests.ephemeral()
    a = client("a-gov", subject_type="pairwise")
    a2 = client("a2-gov", subject_type="pairwise", redirect_uris=["https://a.example/other"])
    b = client("b-gov", subject_type="pairwise",
               sector_identifier_uri="https://b.example/sector.json")
    public = client("p-gov")
    subjects = Subjects(digests, ClientRegistry((a, a2, b, public)))
    seen = subjects.of(a, SUBJECT)
    assert seen != SUBJECT
    assert SUBJECT not in seen
    assert subjects.of(a, SUBJECT) == seen, "stable"
    assert subjects.of(a2, SUBJECT) == seen, "one sector, one sub"
    assert subjects.of(b, SUBJECT) != seen, "another sector cannot link it"
    assert subjects.of(a, "c-0002") != seen
    assert subjects.of(public, SUBJECT) == SUBJECT
    assert subjects.of_client_id("b-gov", SUBJECT) == subjects.of(b, SUBJECT)
    assert subjects.of_client_id("nobody", SUBJECT) == ""
    # another gateway secret, another sub: the secret is what keeps it unlinkable
    assert Subjects(KeyedDigests.ephemeral(), ClientRegistry((a,))).of(a, SUBJECT) != seen


def test_a_pairwise_client_on_several_hosts_needs_its_sector_named() -> None:
    spread = client("s-gov", subject_type="pairwise",
                    redirect_uris=["https://a.example/cb", "https://b.example/cb"])
    assert any("sector_identifier_uri" in p for p in spread.consistency_problems())
    named = client("s-gov", subject_type="pairwise",
                   redirect_uris=["https://a.example/cb", "https://b.example/cb"],
                   sector_identifier_uri="https://a.example/sector.json")
    assert named.consistency_problems() == []
    assert named.sector == "a.example"


@pytest.fixture(scope="module")
def pairwise_gateway(receiver: tuple[Receiver, str]) -> Iterator[str]:
    _, rp_url = receiver
    port = free_port()
    config = config_on_port(port, clients={
        "changsha-gov": {"subject_type": "pairwise",
                         "backchannel_logout_uri": f"{rp_url}/changsha"},
        "yueyang-gov": {"subject_type": "pairwise",
                        "sector_identifier_uri": "https://yueyang.example/sector.json"},
    })
    with serve(create_app(config, store=MemoryStore()), port) as url:
        yield url


def id_sub(gateway: str, token: dict[str, Any]) -> str:
    keys = KeySet.import_key_set(httpx.get(f"{gateway}/jwks").json())
    return str(jwt.decode(token["id_token"], keys).claims["sub"])


def test_every_answer_to_a_pairwise_client_names_the_person_its_way(
        pairwise_gateway: str, receiver: tuple[Receiver, str]) -> None:
    gw = pairwise_gateway
    with httpx.Client(base_url=gw) as browser:
        changsha, token, nonce = full_login(gw, browser)
        sub = validate_id_token(gw, token["id_token"], "changsha-gov", nonce)["sub"]
        assert sub != SUBJECT
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        info = httpx.get(f"{gw}/userinfo", headers=bearer)
        assert info.status_code == 200, info.text  # its access token carries that sub
        assert info.json()["sub"] == sub
        refreshed = changsha.refresh_token(f"{gw}/token", refresh_token=token["refresh_token"])
        assert id_sub(gw, refreshed) == sub
        for hint in ("access_token", "refresh_token"):
            looked = httpx.post(f"{gw}/introspect", data={"token": refreshed[hint]},
                                auth=("hunan-data-api", SECRETS["hunan-data-api"]))
            assert looked.json()["active"] is True, looked.text
            assert looked.json()["sub"] == sub
        # another sector: another sub for the same person, in the same session
        yueyang = rp_client("yueyang-gov", gw)
        url, verifier = authorize_url(yueyang, gw, prompt="none", nonce="n")
        other = yueyang.fetch_token(f"{gw}/token", authorization_response=browser.get(
            url).headers["location"], code_verifier=verifier)
        assert id_sub(gw, dict(other)) not in (sub, SUBJECT)
        # RP-initiated logout with that hint ends this very session without asking
        rp, _ = receiver
        ended = browser.get("/logout", params={
            "id_token_hint": refreshed["id_token"], "client_id": "changsha-gov",
            "post_logout_redirect_uri": "http://127.0.0.1:8001/"})
        assert ended.status_code == 303, ended.text
    logout_token = rp.wait_for("changsha")[-1]
    keys = KeySet.import_key_set(httpx.get(f"{gw}/jwks").json())
    assert jwt.decode(logout_token, keys).claims["sub"] == sub, "logout names it the same way"
    # a new session, a new login: the same sub for the same sector
    with httpx.Client(base_url=gw) as browser:
        _, again, _ = full_login(gw, browser)
    assert id_sub(gw, again) == sub
