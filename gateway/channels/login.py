"""A mini-program login: a platform code in, the gateway's identity out.

Each platform code (and phone code) is reserved in the store — an atomic ``incr`` on a
digest of it — *before* the platform sees it, so a code sent twice, even at the same
moment to two gateway processes, logs in at most once, and the platform's own
"already used" never has to be relied on.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from gateway.assurance import level_of
from gateway.channels.errors import ChannelError
from gateway.channels.identity import ChannelIdentity
from gateway.channels.subject import subject_for
from gateway.identity import Identity, PersonKind
from gateway.store.base import Kind, Store

__all__ = ["PROVINCE", "Channel", "ChannelLogin", "Resolve"]

log = logging.getLogger("roam.channels")

PROVINCE = "430000"
"""The region of a channel identity nobody has bound yet: the province."""

RELOGIN = "登录凭证无效或已使用，请重新登录。"


class Channel(Protocol):
    channel: str
    appid: str

    async def identify(self, code: str, phone_code: str = "") -> ChannelIdentity: ...


Resolve = Callable[[ChannelIdentity], Awaitable[tuple[str, str]]]
"""A channel identity → ``(subject, verified_level)``: the citizen it is bound to at the
bound level, or its own pseudonymous subject at L1 (``gateway.binding``, passed in by the
wiring so this layer imports no feature)."""


class ChannelLogin:
    def __init__(self, channels: Mapping[str, Channel], *, store: Store, code_ttl: int,
                 account_ttl: int, resolve: Resolve | None = None) -> None:
        self.channels = dict(channels)
        self.store = store
        self.code_ttl = code_ttl
        self.account_ttl = account_ttl
        self.resolve = resolve

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.channels)

    async def log_in(self, channel: str, code: str, phone_code: str = "") -> Identity:
        """The identity the platform vouches for; ``ChannelError`` if it does not."""
        platform = self.channels.get(channel)
        if platform is None:
            raise ChannelError("invalid_request", f"不支持的登录渠道：{channel[:32]}")
        if not code or len(code) > 512 or len(phone_code) > 512:
            raise ChannelError("invalid_request", "缺少登录凭证 code。")
        await self._reserve(platform, "code", code)
        if phone_code:
            await self._reserve(platform, "phone", phone_code)
        try:
            found = await platform.identify(code, phone_code)
        except ChannelError as error:
            log.info("channel login refused", extra={
                "channel": channel, "appid": platform.appid, "outcome": error.outcome,
                "platform_code": error.platform_code})
            raise
        if self.resolve is not None:  # bound: the citizen, at the level bound
            subject, verified = await self.resolve(found)
        else:
            subject, verified = subject_for(found), "L1"
        await self.store.upsert(Kind.CHANNEL_ACCOUNT, subject, {
            "channel": found.channel, "appid": found.appid, "openid": found.openid,
            "unionid": found.unionid}, self.account_ttl)
        return identity_of(found, subject, verified)

    async def _reserve(self, platform: Channel, what: str, code: str) -> None:
        key = hashlib.sha256(f"{platform.channel}\0{platform.appid}\0{what}\0{code}"
                             .encode()).hexdigest()
        used = await self.store.incr(Kind.CHANNEL_CODE, key, self.code_ttl)
        if used.value > 1:
            log.info("channel code replayed", extra={"channel": platform.channel,
                                                     "appid": platform.appid, "what": what})
            raise ChannelError("invalid_grant", RELOGIN, platform_code="replayed")


def identity_of(found: ChannelIdentity, subject: str, verified: str = "L1") -> Identity:
    """A channel login is L1 (gateway.assurance: what *this* authentication did), whatever
    the account it is bound to was verified to (``verified``, a claim of its own); no
    real-name claims; a phone number the platform verified is released as
    ``phone_number`` with ``phone_number_verified``."""
    amr = (found.channel,)
    claims: dict[str, object] = {"verified_level": verified}
    if found.phone_number:
        claims["phone_number"] = found.phone_number
        claims["phone_number_verified"] = True
    return Identity(subject=subject, kind=PersonKind.NATURAL, acr=level_of(amr, verified),
                    amr=amr, auth_time=int(time.time()), region=PROVINCE, claims=claims)
