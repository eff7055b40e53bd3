"""Identity sources: where a person proves who they are."""

from __future__ import annotations

from typing import Protocol

from gateway.identity import Identity

__all__ = ["PasswordSource"]


class PasswordSource(Protocol):
    """A source that checks a username (phone number or resident ID) and a password."""

    name: str

    async def authenticate(self, username: str, password: str) -> Identity:
        """The identity on success; raises ``LoginError`` (or ``LockedOut``) otherwise."""

    async def lookup(self, subject: str) -> Identity | None:
        """The current identity of a known subject (for refresh and userinfo)."""
