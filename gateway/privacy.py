"""Masking of personal data for logs, pages and non-privileged APIs (个人信息去标识化).

The rules (``430***********1234``, ``138****1234``, ``张*``) are written for well-formed
values. On shorter or odd input the functions reveal fewer characters, never more: each
rule also fixes how many characters must stay hidden, and the revealed head and then
tail shrink until that many are hidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.identifiers import (
    normalise_resident_id,
    validate_mobile_number,
    validate_resident_id,
)

__all__ = [
    "UNRECOGNISED",
    "mask_birthdate",
    "mask_claims",
    "mask_id_number",
    "mask_name",
    "mask_phone",
    "mask_username",
]

STAR = "*"


def _mask(value: str, head: int, tail: int, hidden: int) -> str:
    """Keep ``head`` and ``tail`` characters only if at least ``hidden`` stay starred."""
    n = len(value)
    if n - head - tail < hidden:
        head = 0
        tail = max(0, min(tail, n - hidden))
    middle = n - head - tail
    return value[:head] + STAR * middle + value[n - tail :]


def mask_id_number(value: str) -> str:
    """``430102199001011234`` -> ``430***********1234`` (first 3, last 4, same length)."""
    # An 18-character number hides 11; a 15-character (pre-1999) one would hide only 8,
    # so it shows its last 4 alone — anything shorter is starred throughout.
    return _mask(value.strip(), 3, 4, 11)


def mask_phone(value: str) -> str:
    """``13812341234`` -> ``138****1234`` (first 3, last 4, same length)."""
    return _mask(value.strip(), 3, 4, 4)


def mask_name(value: str) -> str:
    """``张三`` -> ``张*``, ``欧阳娜娜`` -> ``欧***``; a one-character name is ``*``."""
    return _mask(value.strip(), 1, 0, 1)


def mask_birthdate(value: str) -> str:
    """``1990-01-01`` -> ``1990-**-**``: with region and the last 4 digits kept elsewhere,
    a full birth date would rebuild the whole ID number."""
    value = value.strip()
    return value[:4] + "".join("*" if ch.isdigit() else ch for ch in value[4:])


def mask_username(value: str) -> str:
    """What a log may say about a user name someone typed: a mobile or resident ID number,
    masked; anything else — a password typed into the wrong field, say — is not
    repeated at all, only :data:`UNRECOGNISED`."""
    value = value.strip()
    try:
        validate_mobile_number(value)
        return mask_phone(value)
    except ValueError:
        pass
    try:
        validate_resident_id(value)
    except ValueError:
        return UNRECOGNISED
    return mask_id_number(normalise_resident_id(value))


UNRECOGNISED = "unrecognised"

_MASKERS = {
    "id_number": mask_id_number,
    "phone_number": mask_phone,
    "name": mask_name,
    "birthdate": mask_birthdate,
}


def mask_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``claims`` with ID number, phone, name and birth date masked, ``agent`` too.

    Non-string values of those keys (a number, say) are masked as their text; None stays
    None. Other keys are copied untouched.
    """
    out: dict[str, Any] = {}
    for key, value in claims.items():
        masker = _MASKERS.get(key)
        if masker is not None and value is not None:
            out[key] = masker(value if isinstance(value, str) else str(value))
        elif key == "agent" and isinstance(value, Mapping):
            out[key] = mask_claims(value)
        else:
            out[key] = value
    return out
