"""The TOML directory (``[login] source = "toml-directory"``): people in a TOML file.

A password identity source over a fixed list of citizens and enterprise agents. The demo
and the tests log in against ``config/directory.toml`` (fictional people); a small
deployment may keep its own file. It behaves like a real source where it matters:
argon2id hashes verified off the event loop, the same work and the same error for unknown
users as for wrong passwords (no user enumeration), and an account lockout after repeated
failures (等保 2.0 登录失败处理).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import astuple
from datetime import date
from pathlib import Path

import anyio
import anyio.to_thread
from argon2 import Parameters, PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.attempts import Attempts
from gateway.errors import LoginError
from gateway.identifiers import (
    normalise_resident_id,
)
from gateway.identity import Identity
from gateway.login.directory_file import (
    DirectoryEntry,
    hash_password,
    load_entries,
    parse_entries,
)
from gateway.login.lockout import account_locked
from gateway.store.base import Kind, Store
from gateway.store.memory import MemoryStore

__all__ = [
    "DirectoryEntry",
    "TomlDirectory",
    "hash_password",
    "load_entries",
    "parse_entries",
]

WRONG_CREDENTIALS = "用户名或密码错误"
MISSING_CREDENTIALS = "请输入用户名和密码"
# Longer inputs are refused without hashing: nobody types them, and hashing megabytes is
# a cheap way to burn the server's CPU.
MAX_PASSWORD_LENGTH = 1024

class TomlDirectory:
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
        """``store`` is a ``gateway.store.Store``; without one, counters live in this process."""
        self._entries = tuple(entries)
        self._by_subject = {e.subject: e for e in self._entries}
        self._by_phone = {e.phone: e for e in self._entries}
        self._by_id_number = {e.id_number: e for e in self._entries}
        self._clock = clock
        self._attempts = Attempts(store if store is not None else MemoryStore(clock=clock),
                                  Kind.LOGIN_FAILURES, limit=max_failures,
                                  window=lockout_seconds)
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
    ) -> TomlDirectory:
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

        # The attempt takes its slot before the hash runs: of any number of parallel guesses,
        # in any number of processes, only ``max_failures`` per window are ever verified,
        # and once they are spent even the right password waits for the window to end.
        slot = await self._attempts.reserve(key)
        if slot.refused:
            raise account_locked(slot.retry_after)
        ok = await self._verify(entry.password_hash if entry else self._dummy_hash, password)
        if ok and entry is not None:
            await self._attempts.reset(key)  # the owner is back: a new window
            return entry.identity(amr=("pwd",), auth_time=int(self._clock()))
        if slot.last:
            raise account_locked(slot.retry_after)
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
