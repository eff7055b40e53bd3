"""Who a platform says the mini-program's user is: ``(channel, appid, openid, unionid)``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ChannelIdentity"]


@dataclass(frozen=True)
class ChannelIdentity:
    """A platform user as one app sees them. ``session_key`` is never kept here."""

    channel: str  # "wechat" | "alipay"
    appid: str
    openid: str  # WeChat openid; Alipay open_id (or user_id where the app has no open_id)
    unionid: str = ""  # WeChat unionid (one person across the developer's apps), if any
    phone_number: str = ""  # verified by the platform (getuserphonenumber), E.164-less

    def __repr__(self) -> str:
        # Ends up in tracebacks: never the whole openid or the phone number.
        return (f"ChannelIdentity(channel={self.channel!r}, appid={self.appid!r}, "
                f"openid={self.openid[:4]!r}…)")
