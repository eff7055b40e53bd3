"""Attempt limits (等保 2.0 登录失败处理), counted in the store.

An attempt takes a numbered slot from the store's atomic counter *before* the work it
guards (a password verification, a code check, a call to a verifier), and the work is
done only for slots within the limit. However many requests race, in however many gateway
processes sharing the store, at most ``limit`` slots are handed out per window: the window
is fixed by the first attempt (``Store.incr``), and once its slots are spent every attempt
is refused, unchecked, until it ends. A success may end the window early (``reset``) or
hand its slot back (``give_back``), as the caller's rule says. Used by the password and
step-up limits (gateway/login), binding (gateway/binding) and the operators' console.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.store.base import Kind, Store

__all__ = ["Attempts", "Slot"]


@dataclass(frozen=True)
class Slot:
    """One attempt's place in its window."""

    number: int  # 1 for the window's first attempt
    limit: int
    retry_after: int  # seconds until the window ends

    @property
    def refused(self) -> bool:
        """The window's slots were spent before this attempt: do not do the work."""
        return self.number > self.limit

    @property
    def last(self) -> bool:
        """This is the window's last slot: a failure now locks until the window ends."""
        return self.number >= self.limit

    @property
    def left(self) -> int:
        """Attempts still allowed in this window after this one."""
        return max(0, self.limit - self.number)


class Attempts:
    """At most ``limit`` attempts per key per ``window`` seconds, counted in ``store``."""

    def __init__(self, store: Store, kind: Kind, *, limit: int, window: int) -> None:
        if limit < 1 or window < 1:
            raise ValueError("limit and window must be positive")
        self.store = store
        self.kind = kind
        self.limit = limit
        self.window = window

    async def reserve(self, key: str) -> Slot:
        """Take the next slot; check ``Slot.refused`` before doing the work."""
        counted = await self.store.incr(self.kind, key, self.window)
        return Slot(counted.value, self.limit, max(1, counted.expires_in))

    async def current(self, key: str) -> Slot:
        """Where the window stands, taking nothing (``number`` is the slots taken so far)."""
        counted = await self.store.incr(self.kind, key, self.window, by=0)
        return Slot(counted.value, self.limit, counted.expires_in)

    async def reset(self, key: str) -> None:
        """End the window: the next attempt opens a new one (a success of the account's
        owner). Attempts already holding a slot keep it."""
        await self.store.destroy(self.kind, key)

    async def give_back(self, key: str) -> None:
        """Return a slot taken by an attempt that should not count (a success)."""
        await self.store.incr(self.kind, key, self.window, by=-1)
