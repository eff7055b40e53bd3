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
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.assurance import level_of
from gateway.channels.errors import ChannelError
from gateway.channels.identity import ChannelIdentity
from gateway.channels.subject import subject_for
from gateway.identity import Identity, PersonKind
from gateway.store.base import Kind, Store

__all__ = ["CHANNEL_SUBJECT", "PROVINCE", "Channel", "ChannelLogin", "Resolve", "Resolved"]

log = logging.getLogger("roam.channels")

PROVINCE = "430000"
"""The region of a channel identity nobody has bound yet: the province."""

RELOGIN = "登录凭证无效或已使用，请重新登录。"

CHANNEL_SUBJECT = "channel_sub"
"""A claim of the identity only, never released (no scope names it): the channel
identity's own subject behind a bound login, so the binding API knows which identity a
citizen's mini-program token came from."""


class Channel(Protocol):
    channel: str
    appid: str

    async def identify(self, code: str, phone_code: str = "") -> ChannelIdentity: ...


@dataclass(frozen=True)
class Resolved:
    """Whom a channel identity logs in as: the citizen it is bound to (with the citizen's
    claims and region, at the bound level) or its own pseudonymous subject at L1."""

    subject: str
    verified_level: str
    channel_subject: str = ""  # the identity's own subject (the same as subject unbound)
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)
    region: str = ""


Resolve = Callable[[ChannelIdentity], Awaitable[Resolved]]
"""A channel identity → :class:`Resolved` (``gateway.binding``, passed in by the wiring so
this layer imports no feature)."""


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
            resolved = await self.resolve(found)
        else:
            resolved = Resolved(subject_for(found), "L1")
        await self.store.upsert(Kind.CHANNEL_ACCOUNT, resolved.subject, {
            "channel": found.channel, "appid": found.appid, "openid": found.openid,
            "unionid": found.unionid}, self.account_ttl)
        return identity_of(found, resolved)

    async def _reserve(self, platform: Channel, what: str, code: str) -> None:
        key = hashlib.sha256(f"{platform.channel}\0{platform.appid}\0{what}\0{code}"
                             .encode()).hexdigest()
        used = await self.store.incr(Kind.CHANNEL_CODE, key, self.code_ttl)
        if used.value > 1:
            log.info("channel code replayed", extra={"channel": platform.channel,
                                                     "appid": platform.appid, "what": what})
            raise ChannelError("invalid_grant", RELOGIN, platform_code="replayed")


def identity_of(found: ChannelIdentity, resolved: Resolved) -> Identity:
    """A channel login is L1 (gateway.assurance: what *this* authentication did), whatever
    the account it is bound to was verified to (``verified_level``, a claim of its own).
    Unbound, it carries no real-name claims; bound, the citizen's claims (a binding proved
    name and ID number). A phone number the platform verified is released as
    ``phone_number`` with ``phone_number_verified``."""
    amr = (found.channel,)
    verified = resolved.verified_level
    claims: dict[str, object] = {**resolved.claims, "verified_level": verified}
    if resolved.channel_subject:
        claims[CHANNEL_SUBJECT] = resolved.channel_subject
    if found.phone_number:
        claims["phone_number"] = found.phone_number
        claims["phone_number_verified"] = True
    return Identity(subject=resolved.subject, kind=PersonKind.NATURAL,
                    acr=level_of(amr, verified), amr=amr, auth_time=int(time.time()),
                    region=resolved.region or PROVINCE, claims=claims)
