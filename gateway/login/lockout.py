"""What the login's attempt limits (gateway/attempts.py: password checks per account,
failed logins per client address, SMS codes per person) tell a person."""

from __future__ import annotations

import math

from gateway.errors import LockedOut

__all__ = ["account_locked", "minutes"]


def minutes(seconds: int) -> int:
    """Whole minutes to tell a person to wait (never 0)."""
    return max(1, math.ceil(seconds / 60))


def account_locked(retry_after: int) -> LockedOut:
    return LockedOut(f"登录失败次数过多，账户已临时锁定，请{minutes(retry_after)}分钟后再试",
                     max(1, retry_after))
