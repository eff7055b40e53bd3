"""Unguessable identifiers: the one place codes, tokens, grant and session ids come from."""

from __future__ import annotations

import secrets

__all__ = ["new_id"]


def new_id(nbytes: int = 32) -> str:
    """An unguessable URL-safe identifier of ``nbytes`` random bytes."""
    return secrets.token_urlsafe(nbytes)
