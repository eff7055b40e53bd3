"""Masking of personal data for logs, pages and non-privileged APIs (个人信息去标识化), and
the one rule for what a system receives of a person (:func:`release_claims`).

The rules (``430***********1234``, ``138****1234``, ``张*``) are written for well-formed
values. On shorter or odd input the functions reveal fewer characters, never more: each
rule also fixes how many characters must stay hidden, and the revealed head and then
tail shrink until that many are hidden.

Masking must survive combination. A resident ID number (GB 11643) is 6 digits of area,
8 of birth date, 3 of sequence (odd for men) and a check digit; its masked form shows
the first 3 and the last 4 — the whole sequence and the check digit. The hidden part is
then the last 3 area digits and the birth date, so a masked ID number next to the
birth date and the region gives the number back (one candidate). Hence: whenever a
release carries a masked ID number it carries no birth date, at any level; the region
stays. What is left unknown is the birth date: about 45,000 days since 1900, of which
the check digit keeps one in 11 — some 4,000 numbers, still over 300 if the system
knows the age to within ten years. (The birth year alone would leave about 33.) A
system that gets no ID number at all may get birth date, gender and region: the
sequence is then unknown, 500 numbers for a given gender. A masked phone number hides 4
digits (10,000 numbers) and no claim holds any of them. docs/privacy.md has the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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
    "release_claims",
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

#: Identifiers a system sees masked unless it is cleared for them.
_IDENTIFIER_MASKS: dict[str, Callable[[str], str]] = {
    "id_number": mask_id_number,
    "phone_number": mask_phone,
}
#: Claims that hold the digits a masked ID number hides: never released beside one.
_COMPLETES_MASKED_ID = ("birthdate",)
_PERSON = "agent"  # the one claim that is a person of its own (a legal person's 经办人)


def release_claims(available: Mapping[str, Any], names: Iterable[str], *,
                   privileged: bool) -> dict[str, Any]:
    """What a system receives of ``available``: the claims ``names`` it has (not None).

    ``privileged``: the system may see the identifiers it is approved for (``id_number``,
    ``phone_number`` in ``names``) in full. Every other identifier it receives — all of
    them for a system that is not privileged, and those inside ``agent`` that it is not
    approved for at the top level — is masked; and a release with a masked ID number
    has no birth date (the module's docstring has the arithmetic). An OIDC client is
    privileged in this sense (its approval is its clearance); a connector's system only
    with ``privileged = true``. Every release path goes through here: connectors'
    ``released_claims`` (signed-header, jwt-assertion, CAS, ticket) and ``/userinfo``.
    """
    wanted = frozenset(names)
    full = wanted & _IDENTIFIER_MASKS.keys() if privileged else frozenset()
    masked: set[str] = set()
    out = {name: _project(name, available[name], full, masked)
           for name in sorted(wanted) if available.get(name) is not None}
    if "id_number" in masked:
        _withhold(out, _COMPLETES_MASKED_ID)
    return out


def _project(name: str, value: Any, full: frozenset[str], masked: set[str]) -> Any:
    mask = _IDENTIFIER_MASKS.get(name)
    if mask is not None and name not in full:
        masked.add(name)
        return mask(value if isinstance(value, str) else str(value))
    if name == _PERSON and isinstance(value, Mapping):
        return {key: _project(key, item, full, masked) for key, item in value.items()
                if item is not None}
    return value


def _withhold(claims: dict[str, Any], names: Iterable[str]) -> None:
    for name in names:
        claims.pop(name, None)
    person = claims.get(_PERSON)
    if isinstance(person, dict):
        _withhold(person, names)


_MASKERS = {
    "id_number": mask_id_number,
    "phone_number": mask_phone,
    "name": mask_name,
    "birthdate": mask_birthdate,
}


def mask_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``claims`` with ID number, phone, name and birth date masked, ``agent`` too,
    for logs; with an ID number present the birth date is left out altogether (see
    :func:`release_claims`).

    Non-string values of those keys (a number, say) are masked as their text; None stays
    None. Other keys are copied untouched.
    """
    out = _masked_for_logs(claims)
    if _has_id_number(out):
        _withhold(out, _COMPLETES_MASKED_ID)
    return out


def _masked_for_logs(claims: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in claims.items():
        masker = _MASKERS.get(key)
        if masker is not None and value is not None:
            out[key] = masker(value if isinstance(value, str) else str(value))
        elif key == _PERSON and isinstance(value, Mapping):
            out[key] = _masked_for_logs(value)
        else:
            out[key] = value
    return out


def _has_id_number(claims: Mapping[str, Any]) -> bool:
    person = claims.get(_PERSON)
    return claims.get("id_number") is not None or (
        isinstance(person, Mapping) and person.get("id_number") is not None)
