"""The WeChat app's access token, shared by every gateway process through the store.

``cgi-bin/stable_token`` is rate-limited by the platform and a new token may cut an old
one's life short, so it is never fetched per login: the token sits in the store, and
once it is within ``margin`` seconds of expiring exactly one process (the first to take
the lease, an atomic ``incr``) fetches the next one while the others keep using the old.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from gateway.channels.errors import ChannelError, wechat_error
from gateway.store.base import Kind, Store

__all__ = ["StableToken"]

LEASE_SECONDS = 10
WAIT_STEP = 0.05


class StableToken:
    def __init__(self, *, http: httpx.AsyncClient, store: Store, base_url: str, appid: str,
                 secret: str, margin: int) -> None:
        self.http = http
        self.store = store
        self.base_url = base_url
        self.appid = appid
        self._secret = secret
        self.margin = margin

    def __repr__(self) -> str:
        return f"StableToken(appid={self.appid!r})"

    async def get(self) -> str:
        """A live access token: the shared one, refreshed first if it is about to end."""
        deadline = time.monotonic() + LEASE_SECONDS
        while True:
            now = int(time.time())
            held = await self.store.find(Kind.CHANNEL_TOKEN, self.appid)
            expires_at = int(held["expires_at"]) if held else 0
            if held and expires_at - now > self.margin:
                return str(held["access_token"])
            lease = await self.store.incr(Kind.CHANNEL_TOKEN_LEASE, self.appid, LEASE_SECONDS)
            if lease.value == 1:
                try:
                    return await self._refresh()
                finally:
                    await self.store.destroy(Kind.CHANNEL_TOKEN_LEASE, self.appid)
            if held and expires_at > now:  # another process is refreshing; the old still works
                return str(held["access_token"])
            if time.monotonic() > deadline:
                raise ChannelError("temporarily_unavailable", "微信服务繁忙，请稍后再试。",
                                   retry_after=LEASE_SECONDS)
            await asyncio.sleep(WAIT_STEP)

    async def _refresh(self) -> str:
        try:
            response = await self.http.post(
                f"{self.base_url}/cgi-bin/stable_token",
                json={"grant_type": "client_credential", "appid": self.appid,
                      "secret": self._secret, "force_refresh": False})
            answer: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError):
            raise ChannelError("temporarily_unavailable", "微信服务繁忙，请稍后再试。",
                               retry_after=LEASE_SECONDS) from None
        errcode = int(answer.get("errcode") or 0)
        if errcode or "access_token" not in answer:
            raise wechat_error(errcode or -1)
        token, expires_in = str(answer["access_token"]), int(answer.get("expires_in", 7200))
        held = {"access_token": token, "expires_at": int(time.time()) + expires_in}
        await self.store.upsert(Kind.CHANNEL_TOKEN, self.appid, held, max(expires_in, 1))
        return token
