"""What may enter the audit trail: no secret, no unmasked ID or phone number."""

from __future__ import annotations

from gateway.audit import redact
from gateway.audit.redact import CLEAN_TEXTS, MAX_TEXT, REDACTED, redact_fields, redact_text

ID_NUMBER = "430102199001010016"  # a valid resident ID (check digit 6)
PHONE = "13800000001"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjLTAwMDEifQ.c2lnbmF0dXJlLWJ5dGVz"


def test_secrets_are_kept_out_by_name() -> None:
    fields = redact_fields({"password": "hunter2", "client_secret": "s3", "refresh_token": "rt",
                            "code": "abc", "ticket": "ST-1", "session_key": "k", "dsn": "x",
                            "status_code": 503, "sid": "s-1", "empty_token": ""})
    assert fields == {"password": REDACTED, "client_secret": REDACTED,
                      "refresh_token": REDACTED, "code": REDACTED, "ticket": REDACTED,
                      "session_key": REDACTED, "dsn": REDACTED, "status_code": 503,
                      "sid": "s-1", "empty_token": ""}


def test_id_and_phone_numbers_are_masked_wherever_they_stand() -> None:
    text = redact_text(f"user {PHONE} with id {ID_NUMBER}, call +86{PHONE}")
    assert PHONE not in text
    assert ID_NUMBER not in text
    assert "138****0001" in text
    assert "430***********0016" in text
    # 18 digits that are no ID number (an order number) and short numbers stay
    assert redact_text("order 202601011234567890") == "order 202601011234567890"
    assert redact_text("retry 12345") == "retry 12345"
    assert redact_fields({"phone": int(PHONE)}) == {"phone": "138****0001"}


def test_jwts_are_cut_out_and_names_masked() -> None:
    assert redact_text(f"bad token {JWT}!") == "bad token [jwt]!"
    assert redact_fields({"name": "张三"}) == {"name": "张*"}


def test_text_is_made_storable() -> None:
    text = redact_text("a\x00b\ud800c" + "x" * 2000)
    assert "\x00" not in text
    assert "\ud800" not in text
    assert text.startswith("a\ufffdb\ufffdc")
    assert len(text) == MAX_TEXT + 1
    # floats as text: one spelling whatever the JSON library
    assert redact_fields({"f": float("nan"), "g": 1e20, "h": 0.5}) == {
        "f": "nan", "g": "1e+20", "h": "0.5"}


def test_one_off_values_do_not_keep_later_constants_out_of_the_clean_cache() -> None:
    """A long-running writer sees millions of request ids: the cache must not fill with
    them for good, or a client registered later is redacted in full on every event."""
    for n in range(redact._CLEAN_MAX + 10):
        assert redact_text(f"request-{n:x}") == f"request-{n:x}"
    assert len(CLEAN_TEXTS) <= redact._CLEAN_MAX
    assert redact_text("a-client-registered-later") == "a-client-registered-later"
    assert "a-client-registered-later" in CLEAN_TEXTS
    masked = redact_text("call 13812345678")
    assert masked == "call 138****5678"
    assert "call 13812345678" not in CLEAN_TEXTS
