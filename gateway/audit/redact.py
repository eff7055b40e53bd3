"""What of a log call's fields may enter the audit trail, which is kept for months.

Call sites already pass masked values (``mask_username``, ``mask_id_number``) and no
secret. This is the second line, applied to every event: a field named like a secret
(a password, a token, a code, a ticket, a session key, a cookie) keeps only that it was
there; a resident ID number or a mobile number anywhere in a string is masked
(``430***********1234``, ``138****1234``); a JWT is cut out; a ``name`` is masked as a
name. Strings are made storable as well: no NUL (PostgreSQL text refuses it), no lone
surrogates, at most :data:`MAX_TEXT` characters. Values come out as text, integers
(below 10^10), booleans or null: a float becomes its text, so that every JSON library
spells an event alike (the hash chain needs one spelling).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.identifiers import validate_resident_id
from gateway.privacy import mask_id_number, mask_name, mask_phone

__all__ = ["CLEAN_TEXTS", "MAX_TEXT", "REDACTED", "Scalar", "redact_fields", "redact_text"]

Scalar = str | int | bool | None

MAX_TEXT = 512
REDACTED = "[redacted]"

#: Field names whose values are secrets (exact, lower case) ...
_SECRET_NAMES = frozenset({
    "password", "passwd", "secret", "token", "code", "phone_code", "ticket", "state",
    "nonce", "session_key", "cookie", "authorization", "credential", "dsn", "assertion",
    "id_token_hint", "subject_token", "verification_code", "otp", "auth_code",
    "authorization_code", "platform_code", "sms_code",
})
#: ... and the endings that make one (``status_code`` and the like are no secret).
_SECRET_ENDINGS = ("_password", "_secret", "_token", "_ticket", "_key", "_cookie")

# A resident ID number (18 characters, the last may be X) or a mainland mobile number,
# not part of a longer run of letters and digits.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[0-9Xx](?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![0-9A-Za-z])(?:\+?86)?1[3-9]\d{9}(?![0-9A-Za-z])")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ELEVEN_DIGITS = re.compile(r"\d{11}")  # the least an ID or a mobile number has


def _is_secret(name: str) -> bool:
    lowered = name.lower().rstrip("_")  # "name_": a field renamed beside a LogRecord's own
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_ENDINGS)


def _id_number(match: re.Match[str]) -> str:
    text = match.group()
    try:
        validate_resident_id(text.upper())
    except ValueError:
        return text  # 18 digits that are no ID number (a timestamp, an order number)
    return mask_id_number(text)


def _mobile(match: re.Match[str]) -> str:
    text = match.group()
    prefix = text[: len(text) - 11]
    return prefix + mask_phone(text[-11:])


# Short values found clean, remembered: events repeat them (actions, client ids, scopes,
# addresses, subjects). Only clean ones: nothing personal is kept here. Bounded: one-off
# values (request and session ids) fill it, so a full cache starts again, and the values
# events repeat are back in it after a few events.
_CLEAN: dict[str, bool] = {}
CLEAN_TEXTS: Mapping[str, bool] = _CLEAN
"""Texts :func:`redact_text` found clean (it would give them back as they are)."""
_CLEAN_MAX = 8192
_CLEAN_LONGEST = 128


def redact_text(text: str) -> str:
    """``text`` with ID and mobile numbers masked, JWTs cut out, made storable, cut to
    :data:`MAX_TEXT` characters."""
    if text in _CLEAN:
        return text
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + "…"
    if ("eyJ" not in text and "\x00" not in text  # most values: nothing found, quickly
            and (text.isascii() or not _SURROGATE.search(text))
            and not _ELEVEN_DIGITS.search(text)):
        if len(text) <= _CLEAN_LONGEST:
            if len(_CLEAN) >= _CLEAN_MAX:
                _CLEAN.clear()
            _CLEAN[text] = True
        return text
    text = _SURROGATE.sub("\ufffd", text.replace("\x00", "\ufffd"))
    text = _JWT.sub("[jwt]", text)
    text = _ID_NUMBER.sub(_id_number, text)
    return _MOBILE.sub(_mobile, text)


def _value(name: str, value: Any) -> Scalar:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        # a phone or ID number passed as a number is masked all the same
        return value if abs(value) < 10**10 else redact_text(str(value))
    if isinstance(value, float):
        # as text: JSON libraries spell floats differently (1e-07, 1e-7), and jsonb writes
        # 1e20 back as an integer; the hash needs one spelling
        return repr(value)
    text = value if isinstance(value, str) else str(value)
    if name.rstrip("_") == "name":
        return mask_name(text)
    return redact_text(text)


# Field names as stored, whether they name a secret, and whether a name: names are few
# (the gateway's own), so each is worked out once. Bounded all the same.
_KEYS: dict[object, tuple[str, bool, bool]] = {}
_KEYS_MAX = 1024


def _key(name: object) -> tuple[str, bool, bool]:
    known = _KEYS.get(name)
    if known is None:
        key = redact_text(str(name))[:64]
        known = (key, _is_secret(key), key.rstrip("_") == "name")
        if len(_KEYS) < _KEYS_MAX:
            _KEYS[name] = known
    return known


def redact_fields(fields: Mapping[str, Any]) -> dict[str, Scalar]:
    """Each field as a storable scalar, secrets and personal numbers kept out."""
    out: dict[str, Scalar] = {}
    clean, keys = _CLEAN, _KEYS
    for name, value in fields.items():
        key, secret, named = keys.get(name) or _key(name)
        if secret:
            out[key] = REDACTED if value not in (None, "") else _value(key, value)
        elif value is None or value is True or value is False:
            out[key] = value
        elif value.__class__ is str and not named and value in clean:
            out[key] = value  # most values: seen clean before
        else:
            out[key] = _value(key, value)
    return out
