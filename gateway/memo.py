"""Bounded memos: values made once and kept, the oldest dropped past a limit.

For what is derived from immutable values on every request (a session decoded from its
stored text, a connector's headers for an identity); never for state that can change.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["remember"]

K = TypeVar("K")
V = TypeVar("V")


def remember(memo: dict[K, V], key: K, value: V, *, limit: int) -> V:
    """``memo[key] = value``, first dropping the oldest entries so at most ``limit`` stay."""
    while memo and len(memo) >= limit:
        del memo[next(iter(memo))]
    memo[key] = value
    return value
