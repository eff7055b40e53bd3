"""Operators (运维): accounts of their own, never citizens, with two factors.

等保 2.0 level 3 asks two factors of administrators: a password (argon2id, as the
citizens' directory) and a TOTP code (RFC 6238, ``pyotp``: 30-second steps, six digits,
one step of clock drift either way). A code is good once (§5.2): its step is counted in
the store's atomic counter, so a code seen on a shoulder or a screen share is refused
even within its 30 seconds, in every gateway process. Failures are counted per operator
the same way (the window fixed by the first), and a locked account checks nothing.

``operators.toml``::

    [[operator]]
    name = "ops-zhang"
    role = "operator"            # "viewer": sees the status page; "operator": also
                                 # takes instances out of rotation and back
    password_hash = "$argon2id$…"
    totp_secret = "JBSWY3DP…"    # base32, 160 bits or more (roam ops operator makes both)

The file holds credentials: keep it readable by the gateway alone. A file with
``demo = true`` at the top (the shipped one: its secrets are public) is refused by
:func:`load_operators` unless the caller allows it (a loopback issuer).
"""

from __future__ import annotations

import base64
import binascii
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import anyio
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.attempts import Attempts
from gateway.audit import audit_event
from gateway.errors import ConfigError
from gateway.store.base import Kind, Store

__all__ = [
    "Operator",
    "OperatorLogin",
    "OpsLoginRefused",
    "Role",
    "load_operators",
    "new_totp_secret",
]


STEP = 30  # seconds per TOTP code (RFC 6238's default, what authenticator apps use)
MIN_SECRET_BYTES = 20  # RFC 4226 §4: 160 bits
MAX_INPUT = 1024
WRONG = "账号、密码或动态验证码错误"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Operator:
    name: str
    role: Role
    password_hash: str = field(repr=False)
    totp_secret: str = field(repr=False)

    @property
    def may_change(self) -> bool:
        """Taking instances out of rotation and back needs the operator role."""
        return self.role is Role.OPERATOR


class OpsLoginRefused(Exception):
    """A refused operator login: the Chinese message to show, and for a lockout the
    seconds until the window ends."""

    def __init__(self, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def new_totp_secret() -> str:
    return pyotp.random_base32(32)


def _secret_problem(secret: str) -> str | None:
    try:
        raw = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    except (binascii.Error, ValueError):
        return "must be base32"
    return None if len(raw) >= MIN_SECRET_BYTES else "must be at least 160 bits"


def load_operators(path: Path, *, allow_demo: bool) -> dict[str, Operator]:
    """``path``'s operators; ``ConfigError`` naming every problem at once."""
    try:
        document = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError([f"{path}: {error}"]) from None
    if document.get("demo") is True and not allow_demo:
        raise ConfigError([f"{path}: the demo's operators (their secrets are public) are "
                           "for a loopback issuer only; make your own (roam ops operator)"])
    problems: list[str] = []
    operators: dict[str, Operator] = {}
    raw = document.get("operator", [])
    for index, entry in enumerate(raw if isinstance(raw, list) else [None]):
        where = f"{path}: operator[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        name, role = entry.get("name"), entry.get("role")
        password_hash, secret = entry.get("password_hash"), entry.get("totp_secret")
        unknown = sorted(set(entry) - {"name", "role", "password_hash", "totp_secret"})
        if unknown:
            problems.append(f"{where}: unknown keys {unknown}")
        if not isinstance(name, str) or not name.isascii() or not 1 <= len(name) <= 64 \
                or not name.replace("-", "").replace("_", "").isalnum():
            problems.append(f"{where}: name must be 1-64 ASCII letters, digits, - or _")
            continue
        if name in operators:
            problems.append(f"{where}: name {name!r} appears twice")
        if role not in {r.value for r in Role}:
            problems.append(f"{where}: role must be \"viewer\" or \"operator\"")
        if not isinstance(password_hash, str) or not password_hash.startswith("$argon2id$"):
            problems.append(f"{where}: password_hash must be an argon2id hash")
        secret_problem = _secret_problem(secret) if isinstance(secret, str) else "is missing"
        if secret_problem:
            problems.append(f"{where}: totp_secret {secret_problem}")
        if not problems:
            operators[name] = Operator(name, Role(str(role)), str(password_hash),
                                       str(secret).upper())
    if problems:
        raise ConfigError(problems)
    return operators


class OperatorLogin:
    """Checks an operator's name, password and TOTP code (module docstring)."""

    def __init__(self, operators: Mapping[str, Operator], store: Store, *,
                 max_failures: int, lockout_seconds: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.operators = dict(operators)
        self.store = store
        self.failures = Attempts(store, Kind.OPS_FAILURES, limit=max_failures,
                                 window=lockout_seconds)
        self.clock = clock
        self._hasher = PasswordHasher()
        self._dummy = self._hasher.hash("no such operator")
        self._limiter = anyio.CapacityLimiter(2)

    async def check(self, name: str, password: str, code: str) -> Operator:
        """The operator, or :class:`OpsLoginRefused` (the reason only in the audit log)."""
        if not name or not password or not code or max(map(len, (name, password, code))) \
                > MAX_INPUT:
            raise OpsLoginRefused("请输入账号、密码和动态验证码")
        name = name.strip()
        slot = await self.failures.reserve(name[:64])
        if slot.refused:  # locked: nothing is checked
            audit_event("operator.login", "locked", subject=name[:64], reason="locked")
            raise OpsLoginRefused("失败次数过多，账号已临时锁定，请稍后再试", slot.retry_after)
        operator = self.operators.get(name)
        password_ok = await self._password(operator, password)
        step = self._step(operator, code) if operator is not None else None
        if operator is None or not password_ok or step is None:
            audit_event("operator.login", "failure", subject=name[:64],
                        reason="unknown operator" if operator is None
                        else "password" if not password_ok else "totp")
            raise OpsLoginRefused(WRONG)
        used = await self.store.incr(Kind.OPS_TOTP, f"{operator.name}:{step}", 4 * STEP)
        if used.value > 1:
            audit_event("operator.login", "denied", subject=operator.name,
                        reason="totp code reused")
            raise OpsLoginRefused("该动态验证码已使用，请等待下一个验证码")
        await self.failures.reset(operator.name)
        audit_event("operator.login", "success", subject=operator.name,
                    role=operator.role.value)
        return operator

    async def _password(self, operator: Operator | None, password: str) -> bool:
        password_hash = operator.password_hash if operator is not None else self._dummy

        def verify() -> bool:
            try:
                return bool(self._hasher.verify(password_hash, password))
            except (VerificationError, InvalidHashError):
                return False

        ok = await anyio.to_thread.run_sync(verify, limiter=self._limiter)
        return ok and operator is not None

    def _step(self, operator: Operator, code: str) -> int | None:
        """The time step whose code ``code`` is (this one or one either side), else None."""
        totp = pyotp.TOTP(operator.totp_secret, interval=STEP)
        now = self.clock()
        code = code.strip()
        for offset in (0, -1, 1):
            at = now + offset * STEP
            if totp.verify(code, for_time=at, valid_window=0):
                return int(at // STEP)
        return None
