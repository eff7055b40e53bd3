"""The store protocol, shaped after node-oidc-provider's adapter.

Every record is a JSON-able mapping under ``(kind, id)`` with a TTL in seconds. A record
whose payload has a ``grant_id`` belongs to that grant, and ``revoke_by_grant`` removes
all of them at once (codes, refresh tokens, access-token ids of one authorization).

A record may also carry a *version*: an opaque string that ``advance`` replaces by
compare-and-swap, remembering the last ``VERSION_HISTORY`` versions it replaced. Rotating
refresh tokens is that: the grant's version is its current token's digest, so one atomic
call on one key both checks a token and retires it, and a retired one is recognised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, Protocol

import orjson

from gateway.errors import StoreError

VERSION_HISTORY = 16
"""How many replaced versions a record remembers (newest first)."""


Advance = Literal["advanced", "retired", "unknown"]
"""What ``advance`` found: the expected version (now replaced), one it had replaced
before, or neither."""


def load_payload(text: str | bytes) -> dict[str, Any]:
    """A stored payload from its JSON text (``find_text``); ``StoreError`` if it is not a
    JSON object (a store holding something this gateway did not write)."""
    try:
        payload = orjson.loads(text)
    except ValueError:  # orjson's JSONDecodeError, bad UTF-8 included
        raise StoreError("the store returned a record that is not JSON") from None
    if not isinstance(payload, dict):
        raise StoreError("the store returned a record that is not a JSON object")
    return payload


class Versioned(NamedTuple):
    payload: dict[str, Any]
    version: str  # "" when the record was written without one
    previous: tuple[str, ...]  # the versions ``advance`` replaced, newest first


class Store(Protocol):
    async def upsert(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int, *,
                     version: str = "") -> None:
        """Create or replace a record that expires after ``ttl`` seconds (``ttl`` > 0).

        Replacing forgets everything of the old record: consumed flag, version, history.
        """

    async def find(self, kind: str, id: str) -> dict[str, Any] | None:
        """The record's payload, or None if absent or expired."""

    async def find_text(self, kind: str, id: str) -> str | bytes | None:
        """The record's payload as stored (compact JSON), or None: for a caller that keeps
        decoded payloads by their text (the session read on every proxied request)."""

    async def consume(self, kind: str, id: str) -> tuple[dict[str, Any], bool] | None:
        """Mark a record used, atomically.

        Returns ``(payload, first_use)``, where ``first_use`` is True for exactly one caller
        however many race; None if the record is absent or expired. A consumed record stays
        (with its TTL) so replays can be detected.
        """

    async def find_versioned(self, kind: str, id: str) -> Versioned | None:
        """As ``find``, with the record's version and the versions it replaced."""

    async def advance(self, kind: str, id: str, expected: str,
                      new: str) -> tuple[dict[str, Any], Advance] | None:
        """Replace the version with ``new`` if it is ``expected``, atomically; and the payload.

        ``"advanced"`` for exactly one caller however many race with the same ``expected``
        (which then heads the history); ``"retired"`` if ``expected`` is in the history;
        ``"unknown"`` otherwise; None if the record is absent or expired. Only an advance
        changes anything, and never the payload or the TTL.
        """

    async def destroy(self, kind: str, id: str) -> None:
        """Remove a record; absent is fine."""

    async def find_by_grant(self, grant_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        """``(kind, id, payload)`` of every live record of this grant, in no set order.

        The grant index doubles as a small secondary index (a session's RPs, a subject's
        sessions): records join it by carrying ``grant_id``.
        """

    async def revoke_by_grant(self, grant_id: str) -> int:
        """Remove every record whose payload carried this ``grant_id``; returns how many."""

    async def close(self) -> None:
        """Release connections."""
