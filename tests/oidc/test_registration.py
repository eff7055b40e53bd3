"""What a registration may say (gateway/oidc/registration.py), rule by rule."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.oidc.registration import MetadataRules, RegistrationRefused, read_metadata

PRODUCTION = MetadataRules(algs=frozenset({"RS256", "ES256"}), loopback_issuer=False,
                           pairwise=True)
DEMO = MetadataRules(algs=frozenset({"RS256"}), loopback_issuer=True, pairwise=False)


def body(**changes: Any) -> dict[str, Any]:
    return {"client_name": "娄底市政务服务", "redirect_uris": ["https://ld.example.cn/cb"],
            **changes}


def refused(data: dict[str, Any], rules: MetadataRules = PRODUCTION) -> RegistrationRefused:
    with pytest.raises(RegistrationRefused) as caught:
        read_metadata(data, rules)
    return caught.value


def test_defaults_are_filled_in_and_unknown_metadata_is_ignored() -> None:
    meta = read_metadata(body(frobnicate=True, scope="profile"), PRODUCTION)
    assert "frobnicate" not in meta
    assert meta["scope"] == "openid profile"  # openid always
    assert meta["claims"] == ["birthdate", "gender", "name", "verified_level"]
    assert meta["grant_types"] == ["authorization_code", "refresh_token"]
    assert meta["response_types"] == ["code"]
    assert meta["token_endpoint_auth_method"] == "client_secret_basic"
    assert meta["id_token_signed_response_alg"] == "RS256"
    assert meta["subject_type"] == "public"


def test_the_chinese_name_may_come_with_a_language_tag() -> None:
    data = body()
    data["client_name#zh-CN"] = data.pop("client_name")
    assert read_metadata(data, PRODUCTION)["client_name"] == "娄底市政务服务"
    assert refused(body(client_name="Loudi")).error == "invalid_client_metadata"


def test_plain_http_redirects_only_to_loopback_and_only_in_the_demo() -> None:
    loopback = body(redirect_uris=["http://127.0.0.1:9000/cb"])
    assert refused(loopback).error == "invalid_redirect_uri"
    assert read_metadata(loopback, DEMO)["redirect_uris"] == ["http://127.0.0.1:9000/cb"]
    assert refused(body(redirect_uris=["http://ld.example.cn/cb"]), DEMO).error == (
        "invalid_redirect_uri")
    assert refused(body(redirect_uris="https://ld.example.cn/cb")).error == (
        "invalid_redirect_uri")


def test_only_what_the_gateway_can_do_registers() -> None:
    assert refused(body(id_token_signed_response_alg="ES256"), DEMO).description.endswith(
        "signs ID tokens with RS256")
    assert refused(body(response_types=["token"])).error == "invalid_client_metadata"
    assert refused(body(application_type="native")).error == "invalid_client_metadata"
    assert refused(body(subject_type="pairwise"), DEMO).error == "invalid_client_metadata"
    assert read_metadata(body(subject_type="pairwise"), PRODUCTION)["subject_type"] == (
        "pairwise")
    assert refused(body(default_acr_values=["L5"])).error == "invalid_client_metadata"
    assert refused(body(jwks={"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
                        token_endpoint_auth_method="private_key_jwt")).error == (
        "invalid_client_metadata")
    assert refused(body(jwks_uri="https://ld.example.cn/jwks")).error == (
        "invalid_client_metadata")  # keys without private_key_jwt
