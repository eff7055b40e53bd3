"""Assurance levels: what one authentication did, capped by how far the account is verified.

The one place that says which authentication methods (RFC 8176 ``amr`` values) reach
which level; docs/assurance.md explains it for people. Two facts make a session's level:

* the account's **verified level** — how far the person behind it was proofed (L1 a
  verified phone or mini-program channel, L2 real name matched against an authoritative
  source, L3 real person by a liveness check, L4 certificate, e-licence or counter). It
  belongs to the account, comes from the identity source, and is released as the
  ``verified_level`` claim;
* the methods done in **this** authentication (``amr``): a password shows control of the
  account, a liveness check shows the real person is present now.

``acr`` is the higher of what the methods reach, never above the verified level: a
password alone on an L3 account is L2, and no method lifts an L1 account to L2 (that
takes proofing, not a login).
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.identity import LEVELS, level_rank

__all__ = ["LEVEL_NAMES", "METHOD_LEVELS", "PRIMARY_METHODS", "level_of"]

LEVEL_NAMES = {"L1": "账户认证", "L2": "实名认证", "L3": "实人认证", "L4": "证照认证"}
"""How pages name the levels."""

METHOD_LEVELS: dict[str, str] = {
    "wechat": "L1",  # a mini-program channel identity (openid) alone
    "alipay": "L1",
    "pwd": "L2",  # the account's password: control of the account
    "sms": "L2",  # a one-time code to the account's phone: the same, another way
    "face": "L3",  # a liveness check against the real-name record's photo
}
"""The highest level each method can reach; unknown methods reach none. No method offered
here reaches L4."""

PRIMARY_METHODS = frozenset({"pwd"})
"""Methods that log a person in (the login page); the others step a session up."""


def level_of(amr: Iterable[str], verified: str) -> str:
    """The level an authentication that did ``amr`` reaches on an account verified to
    ``verified``; "" when it reaches none (no method, or an unverified account)."""
    reached = max((level_rank(METHOD_LEVELS.get(method, "")) for method in amr), default=0)
    reached = min(reached, level_rank(verified))
    return LEVELS[reached - 1] if reached else ""
