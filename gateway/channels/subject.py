"""The ``sub`` of a channel identity — one function, so binding can replace it.

For now a channel identity is its own pseudonymous subject, derived deterministically
from (channel, appid, unionid or openid): the same user of the same app always gets the
same ``sub``, and the ``sub`` does not reveal the openid. Real-name binding will map a
bound identity to its citizen here instead.
"""

from __future__ import annotations

import base64
import hashlib

from gateway.channels.identity import ChannelIdentity

__all__ = ["subject_for"]


def subject_for(identity: ChannelIdentity) -> str:
    """``ch-`` and 26 base32 characters of SHA-256 over the identity's stable key."""
    key = identity.unionid or identity.openid
    scope = "" if identity.unionid else identity.appid  # a unionid spans the developer's apps
    digest = hashlib.sha256(f"{identity.channel}\0{scope}\0{key}".encode()).digest()
    return "ch-" + base64.b32encode(digest[:16]).decode().rstrip("=").lower()
