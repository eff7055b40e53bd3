"""Alipay's RSA2 signing-string rules and the exact-text response check."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.channels import rsa2

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_signing_string_sorts_skips_sign_and_empty_values_and_keeps_raw_values() -> None:
    params = {"method": "alipay.system.oauth.token", "app_id": "2021", "sign": "zzz",
              "biz_content": "", "timestamp": "2026-12-02 10:00:00", "charset": "utf-8"}
    assert rsa2.signing_string(params) == (
        "app_id=2021&charset=utf-8&method=alipay.system.oauth.token"
        "&timestamp=2026-12-02 10:00:00")


def test_sign_and_verify_round_trip_and_tampering() -> None:
    signature = rsa2.sign(KEY, "a=1&b=2")
    assert rsa2.verify(KEY.public_key(), "a=1&b=2", signature)
    assert not rsa2.verify(KEY.public_key(), "a=1&b=3", signature)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not rsa2.verify(other.public_key(), "a=1&b=2", signature)
    assert not rsa2.verify(KEY.public_key(), "a=1&b=2", "not base64!")


def test_response_content_is_the_text_exactly_as_sent() -> None:
    inner = '{"user_id": "2088",  "msg":"成功\\u0021"}'
    text = f'{{"alipay_system_oauth_token_response" : {inner},"sign":"abc"}}'
    assert rsa2.response_content(text, "alipay_system_oauth_token_response") == inner
    assert json.loads(text)["sign"] == "abc"
    assert rsa2.response_content(text, "error_response") is None
    assert rsa2.response_content('{"error_response": {"broken', "error_response") is None
