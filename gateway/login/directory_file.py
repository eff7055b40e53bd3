"""The TOML directory's file: parsing and validating ``[[citizen]]`` entries, all problems at
once."""

from __future__ import annotations

import copy
import functools
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError

from gateway.assurance import level_of
from gateway.errors import ConfigError
from gateway.identifiers import (
    normalise_resident_id,
    normalise_uscc,
    validate_resident_id,
    validate_uscc,
)
from gateway.identity import LEVELS, Identity, PersonKind
from gateway.regions import RegionDirectory

__all__ = ["DirectoryEntry", "hash_password", "load_entries", "parse_entries"]

_PERSON_KEYS = ("subject", "name", "phone", "id_number", "region", "verified_level", "kind")
_REQUIRED = (*_PERSON_KEYS, "password_hash")
_LEGAL_ONLY = ("uscc", "org_name")
_PHONE = re.compile(r"1[3-9][0-9]{9}")
_SUBJECT = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, as OIDC `sub` allows
_REGION = re.compile(r"43[0-9]{4}")


def hash_password(plain: str, *, hasher: PasswordHasher | None = None) -> str:
    """An argon2id PHC string for ``plain`` (RFC 9106 low-memory profile by default)."""
    return (hasher or PasswordHasher()).hash(plain)


@dataclass(frozen=True)
class DirectoryEntry:
    """One validated ``[[citizen]]``; personal data and the hash stay out of its repr."""

    subject: str
    kind: PersonKind
    verified_level: str  # how far the person was proofed; each login's acr is capped by it
    region: str
    phone: str = field(repr=False)
    id_number: str = field(repr=False)
    password_hash: str = field(repr=False)
    claims: Mapping[str, Any] = field(repr=False)
    agent: Mapping[str, Any] | None = field(default=None, repr=False)

    def identity(self, *, amr: tuple[str, ...], auth_time: int) -> Identity:
        """A fresh Identity of an authentication that did ``amr`` (its acr follows from
        them and the verified level); claims are deep copies the caller may change."""
        return Identity(
            subject=self.subject,
            kind=self.kind,
            acr=level_of(amr, self.verified_level),
            amr=amr,
            auth_time=auth_time,
            region=self.region,
            claims={**copy.deepcopy(dict(self.claims)), "verified_level": self.verified_level},
            agent=copy.deepcopy(dict(self.agent)) if self.agent is not None else None,
        )


# --- loading -------------------------------------------------------------------------


def load_entries(path: Path, *, today: date | None = None) -> list[DirectoryEntry]:
    """Read and validate a directory file; every problem is reported in one ConfigError."""
    label = str(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError([f"{label}: cannot read: {exc.strerror or exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{label}: not valid TOML: {exc}"]) from None
    return parse_entries(data, label=label, today=today)


def parse_entries(
    data: Mapping[str, Any], *, label: str, today: date | None = None
) -> list[DirectoryEntry]:
    """Validate parsed TOML; ``label`` (the file name) prefixes every problem."""
    problems: list[str] = []
    for key in data:
        if key != "citizen":
            problems.append(f"{label}: {key}: unknown key (expected [[citizen]] tables)")
    citizens = data.get("citizen", [])
    if not isinstance(citizens, list):
        problems.append(f"{label}: citizen: must be an array of tables ([[citizen]])")
        citizens = []
    elif not citizens:
        problems.append(f"{label}: citizen: no [[citizen]] entries")

    entries: list[DirectoryEntry] = []
    first_seen: dict[tuple[str, str], int] = {}
    for i, raw in enumerate(citizens):
        where = f"{label}: citizen[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a table")
            continue
        entry, entry_problems = _parse_entry(raw, where, today)
        problems.extend(entry_problems)
        if entry is None:
            continue
        for key, value in (
            ("subject", entry.subject),
            ("phone", entry.phone),
            ("id_number", entry.id_number),
        ):
            earlier = first_seen.setdefault((key, value), i)
            if earlier != i:
                # The value itself is not repeated: phone and ID number are personal data.
                problems.append(f"{where}.{key}: duplicate of citizen[{earlier}].{key}")
        entries.append(entry)
    if problems:
        raise ConfigError(problems)
    return entries


def _parse_entry(
    raw: Mapping[str, Any], where: str, today: date | None
) -> tuple[DirectoryEntry | None, list[str]]:
    problems: list[str] = []
    values: dict[str, str] = {}

    kind_value = raw.get("kind")
    legal = kind_value == PersonKind.LEGAL.value
    allowed = (*_REQUIRED, *_LEGAL_ONLY)
    for key in raw:
        if key == "acr":
            problems.append(f"{where}.acr: renamed verified_level (how far the person was "
                            "verified; each login's acr now says what that login did)")
        elif key not in allowed:
            problems.append(f"{where}.{key}: unknown key")
        elif key in _LEGAL_ONLY and kind_value == PersonKind.NATURAL.value:
            problems.append(f'{where}.{key}: only allowed when kind = "legal"')
    for key in (*_REQUIRED, *(_LEGAL_ONLY if legal else ())):
        value = raw.get(key)
        if value is None:
            problems.append(f"{where}.{key}: missing")
        elif not isinstance(value, str):
            problems.append(f"{where}.{key}: must be a string (quote it)")
        else:
            values[key] = value.strip()

    for key, problem_of in _FIELD_CHECKS.items():
        if key in values and (message := problem_of(values[key], today)) is not None:
            problems.append(f"{where}.{key}: {message}")

    if problems:
        return None, problems
    person = _person_claims(
        values["name"], values["phone"], normalise_resident_id(values["id_number"])
    )
    claims: dict[str, Any] = dict(person)
    agent: dict[str, Any] | None = None
    if legal:
        agent = dict(person)
        claims.update(
            uscc=normalise_uscc(values["uscc"]),
            org_name=values["org_name"],
            agent=dict(person),
        )
    entry = DirectoryEntry(
        subject=values["subject"],
        kind=PersonKind(values["kind"]),
        verified_level=values["verified_level"],
        region=values["region"],
        phone=values["phone"],
        id_number=person["id_number"],
        password_hash=values["password_hash"],
        claims=claims,
        agent=agent,
    )
    return entry, []


def _problem_if(ok: bool, message: str) -> str | None:
    return None if ok else message


@functools.cache
def _regions() -> RegionDirectory:
    """The shipped region data, read once: it only changes with a new release."""
    return RegionDirectory.load()


def _current_region(code: str) -> bool:
    region = _regions().get(code)
    return region is not None and region.current


_FIELD_CHECKS: dict[str, Callable[[str, date | None], str | None]] = {
    "subject": lambda v, _: _problem_if(
        bool(_SUBJECT.fullmatch(v)),
        "must be 1-255 printable ASCII characters without spaces, e.g. c-0001",
    ),
    "name": lambda v, _: _problem_if(bool(v), "must not be empty"),
    "org_name": lambda v, _: _problem_if(bool(v), "must not be empty"),
    "phone": lambda v, _: _problem_if(
        bool(_PHONE.fullmatch(v)), "must be an 11-digit mainland mobile number (1[3-9]xxxxxxxxx)"
    ),
    "region": lambda v, _: _problem_if(
        bool(_REGION.fullmatch(v)) and _current_region(v),
        "must be a current six-digit Hunan GB/T 2260 code (gateway/data/hunan_regions.json)",
    ),
    "verified_level": lambda v, _: _problem_if(v in LEVELS,
                                               f"must be one of {', '.join(LEVELS)}"),
    "kind": lambda v, _: _problem_if(
        v in {k.value for k in PersonKind}, 'must be "natural" or "legal"'
    ),
    "id_number": lambda v, today: _error_of(
        validate_resident_id, v, today=today, known_area=_regions().known_area
    ),
    "uscc": lambda v, _: _error_of(validate_uscc, v),
    "password_hash": lambda v, _: _argon2id_problem(v),
}


def _error_of(validator: Callable[..., None], value: str, **kwargs: Any) -> str | None:
    try:
        validator(value, **kwargs)
    except ValueError as exc:
        return str(exc)
    return None


def _argon2id_problem(value: str) -> str | None:
    try:
        params = extract_parameters(value)
    except InvalidHashError:
        return "not an argon2 PHC string (make one with gateway.login.directory.hash_password)"
    if params.type is not Type.ID:
        return "must be argon2id, not argon2i or argon2d"
    if params.salt_len < 8 or params.hash_len < 16:
        return "salt or digest part is malformed or too short"
    return None


def _person_claims(name: str, phone: str, id_number: str) -> dict[str, Any]:
    """Claims of a natural person; birth date and gender come from the (valid) ID number."""
    return {
        "name": name,
        "phone_number": phone,
        "phone_number_verified": True,
        "id_number": id_number,
        "birthdate": f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}",
        "gender": "male" if int(id_number[16]) % 2 else "female",
    }
