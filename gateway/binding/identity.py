"""A channel identity: who a mini-program user is to one platform's app.

``(channel, appid, openid, unionid)``: WeChat's ``openid`` is per app, its ``unionid``
per open-platform account (several apps); Alipay gives ``user_id``/``open_id`` (put in
``openid``) and no unionid. Alone it proves no real name: L1.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["CHANNELS", "ChannelIdentity"]

CHANNELS = ("wechat", "alipay")


@dataclass(frozen=True)
class ChannelIdentity:
    channel: str
    appid: str
    openid: str
    unionid: str = ""

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}")
        if not self.appid or not self.openid:
            raise ValueError("a channel identity needs an appid and an openid")

    @property
    def key(self) -> str:
        """The store id of this identity's binding: one per (channel, app, openid)."""
        return _digest("id", self.channel, self.appid, self.openid)

    @property
    def union_key(self) -> str:
        """The store id shared by every app of one unionid ("" without one)."""
        return _digest("union", self.channel, self.unionid) if self.unionid else ""

    @property
    def subject(self) -> str:
        """The channel's own pseudonymous ``sub`` while unbound: stable per unionid where
        there is one (every app of that account agrees), else per app and openid."""
        basis = ("u", self.channel, self.unionid) if self.unionid else (
            "o", self.channel, self.appid, self.openid)
        return "ch-" + _digest(*basis)[:32]

    def to_dict(self) -> dict[str, str]:
        return {"channel": self.channel, "appid": self.appid, "openid": self.openid,
                "unionid": self.unionid}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ChannelIdentity:
        return cls(str(data["channel"]), str(data["appid"]), str(data["openid"]),
                   str(data.get("unionid") or ""))


def _digest(*parts: str) -> str:
    """Store ids and subjects never carry an openid in clear (\\x1f cannot be in one)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
