"""The demo directory: a TOML file of fictional citizens and enterprise agents.

It is the password identity source the demo and the tests log in against, so it behaves
like a real one where it matters: argon2id hashes verified off the event loop, the same
work and the same error for unknown users as for wrong passwords (no user enumeration),
and an account lockout after repeated failures (等保 2.0 登录失败处理).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import os
import re
import secrets
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import astuple, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.to_thread
from argon2 import Parameters, PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.errors import ConfigError, LockedOut, LoginError
from gateway.identifiers import (
    normalise_resident_id,
    normalise_uscc,
    validate_resident_id,
    validate_uscc,
)
from gateway.identity import LEVELS, Identity, PersonKind
from gateway.regions import RegionDirectory
from gateway.store.base import Store

__all__ = [
    "DemoDirectory",
    "DirectoryEntry",
    "hash_password",
    "load_entries",
    "parse_entries",
]

FAILURE_KIND = "login_failures"
WRONG_CREDENTIALS = "用户名或密码错误"
MISSING_CREDENTIALS = "请输入用户名和密码"
# Longer inputs are refused without hashing: nobody types them, and hashing megabytes is
# a cheap way to burn the server's CPU.
MAX_PASSWORD_LENGTH = 1024

_PERSON_KEYS = ("subject", "name", "phone", "id_number", "region", "acr", "kind")
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
    acr: str
    region: str
    phone: str = field(repr=False)
    id_number: str = field(repr=False)
    password_hash: str = field(repr=False)
    claims: Mapping[str, Any] = field(repr=False)
    agent: Mapping[str, Any] | None = field(default=None, repr=False)

    def identity(self, *, amr: tuple[str, ...], auth_time: int) -> Identity:
        """A fresh Identity; claims are deep copies so callers cannot change the entry."""
        return Identity(
            subject=self.subject,
            kind=self.kind,
            acr=self.acr,
            amr=amr,
            auth_time=auth_time,
            region=self.region,
            claims=copy.deepcopy(dict(self.claims)),
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
        if key not in allowed:
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
        acr=values["acr"],
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
    "acr": lambda v, _: _problem_if(v in LEVELS, f"must be one of {', '.join(LEVELS)}"),
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


# --- failure counting ----------------------------------------------------------------


class _FailureStore(Protocol):
    """The part of ``gateway.store.Store`` the failure counter needs."""

    async def upsert(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int) -> None: ...

    async def find(self, kind: str, id: str) -> dict[str, Any] | None: ...

    async def destroy(self, kind: str, id: str) -> None: ...


class _LocalFailures:
    """In-process failure records, expiring on the injected clock (one process only)."""

    _PRUNE_AT = 10_000

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._records: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    async def upsert(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int) -> None:
        now = self._clock()
        if len(self._records) >= self._PRUNE_AT:  # sprayed usernames must not pile up
            self._records = {k: r for k, r in self._records.items() if r[0] > now}
        self._records[(kind, id)] = (now + ttl, dict(payload))

    async def find(self, kind: str, id: str) -> dict[str, Any] | None:
        record = self._records.get((kind, id))
        if record is None or record[0] <= self._clock():
            return None
        return dict(record[1])

    async def destroy(self, kind: str, id: str) -> None:
        self._records.pop((kind, id), None)


@dataclass(frozen=True)
class _Failures:
    count: int = 0
    first: float = 0.0  # when the counting window opened
    locked_until: float = 0.0

    @classmethod
    def current(cls, payload: Mapping[str, Any] | None, now: float, window: int) -> _Failures:
        """The record as of ``now``; an elapsed window or lock counts as no record."""
        if payload is None:
            return cls()
        try:
            state = cls(
                int(payload["count"]), float(payload["first"]), float(payload["locked_until"])
            )
        except (KeyError, TypeError, ValueError):
            return cls()
        if state.locked_until:
            return state if now < state.locked_until else cls()
        return state if now < state.first + window else cls()

    def to_payload(self) -> dict[str, Any]:
        return {"count": self.count, "first": self.first, "locked_until": self.locked_until}


def _locked_out(until: float, now: float) -> LockedOut:
    seconds = max(1, math.ceil(until - now))
    minutes = max(1, math.ceil(seconds / 60))
    return LockedOut(f"登录失败次数过多，账户已临时锁定，请{minutes}分钟后再试", seconds)


# --- the source ----------------------------------------------------------------------


class DemoDirectory:
    """Password source over a fixed list of people (implements ``PasswordSource``)."""

    name: str = "directory"

    def __init__(
        self,
        entries: Iterable[DirectoryEntry],
        *,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
        max_failures: int = 5,
        lockout_seconds: int = 900,
        max_concurrent_hashes: int | None = None,
    ) -> None:
        """``store`` is a ``gateway.store.Store``; without one, counters live in memory."""
        if max_failures < 1 or lockout_seconds < 1:
            raise ValueError("max_failures and lockout_seconds must be positive")
        self._entries = tuple(entries)
        self._by_subject = {e.subject: e for e in self._entries}
        self._by_phone = {e.phone: e for e in self._entries}
        self._by_id_number = {e.id_number: e for e in self._entries}
        self._clock = clock
        self._failures: _FailureStore = store if store is not None else _LocalFailures(clock)
        self._max_failures = max_failures
        self._window = lockout_seconds
        self._hasher = PasswordHasher()
        # argon2 holds its memory cost (64 MiB by default) per running hash: bound how many
        # run at once so a burst of logins cannot exhaust memory or the thread pool.
        self._limiter = anyio.CapacityLimiter(
            max_concurrent_hashes or max(1, min(8, os.cpu_count() or 1))
        )
        self._dummy_hash = self._make_dummy_hash()

    @classmethod
    def from_file(
        cls,
        path: Path,
        *,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
        max_failures: int = 5,
        lockout_seconds: int = 900,
        max_concurrent_hashes: int | None = None,
    ) -> DemoDirectory:
        """Load and validate ``path``; raises ``ConfigError`` listing every problem."""
        entries = load_entries(path, today=date.fromtimestamp(clock()))
        return cls(
            entries,
            store=store,
            clock=clock,
            max_failures=max_failures,
            lockout_seconds=lockout_seconds,
            max_concurrent_hashes=max_concurrent_hashes,
        )

    @property
    def entries(self) -> tuple[DirectoryEntry, ...]:
        return self._entries

    def _make_dummy_hash(self) -> str:
        """A hash with the entries' most common cost, so unknown users cost the same time."""
        costs = Counter(astuple(extract_parameters(e.password_hash)) for e in self._entries)
        hasher = self._hasher
        if costs:
            hasher = PasswordHasher.from_parameters(Parameters(*costs.most_common(1)[0][0]))
        return hasher.hash(secrets.token_urlsafe(32))

    def _find(self, username: str) -> DirectoryEntry | None:
        return self._by_phone.get(username) or self._by_id_number.get(username)

    async def authenticate(self, username: str, password: str) -> Identity:
        """Log in by phone number or resident ID number (a lowercase ``x`` is accepted)."""
        username = normalise_resident_id(username)  # strip + upper; phones are unaffected
        if not username or not password:
            raise LoginError(MISSING_CREDENTIALS)
        entry = self._find(username)
        key = entry.subject if entry else hashlib.sha256(username.encode()).hexdigest()

        now = self._clock()
        state = _Failures.current(await self._failures.find(FAILURE_KIND, key), now, self._window)
        if state.locked_until:
            raise _locked_out(state.locked_until, now)
        if state.count >= self._max_failures:
            # The quota is taken by attempts still being verified; wait for the window.
            raise _locked_out(state.first + self._window, now)
        # Count the attempt before verifying, so parallel guesses cannot all slip past the
        # check above while their hashes run; a success removes the record again.
        state = _Failures(state.count + 1, state.first or now)
        await self._failures.upsert(FAILURE_KIND, key, state.to_payload(), self._window)

        ok = await self._verify(entry.password_hash if entry else self._dummy_hash, password)
        if ok and entry is not None:
            await self._failures.destroy(FAILURE_KIND, key)
            return entry.identity(amr=("pwd",), auth_time=int(self._clock()))

        if state.count >= self._max_failures:
            now = self._clock()
            locked = _Failures(state.count, state.first, now + self._window)
            await self._failures.upsert(FAILURE_KIND, key, locked.to_payload(), self._window)
            raise _locked_out(locked.locked_until, now)
        raise LoginError(WRONG_CREDENTIALS)

    async def lookup(self, subject: str) -> Identity | None:
        """The identity of a known subject as the file has it (``auth_time`` 0)."""
        entry = self._by_subject.get(subject)
        return entry.identity(amr=(), auth_time=0) if entry is not None else None

    async def _verify(self, password_hash: str, password: str) -> bool:
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        return await anyio.to_thread.run_sync(
            _verify_sync, self._hasher, password_hash, password, limiter=self._limiter
        )


def _verify_sync(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
