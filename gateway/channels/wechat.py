"""WeChat mini-program login: ``sns/jscode2session`` and ``getuserphonenumber``.

The answer's ``session_key`` is dropped the moment the answer is read: the gateway needs
neither to decrypt ``wx.getUserInfo`` data nor to check signatures with it, so it is never
kept, logged or put in any record.
"""

from __future__ import annotations

from typing import Any

import httpx

from gateway.channels.errors import ChannelError, wechat_error
from gateway.channels.identity import ChannelIdentity
from gateway.channels.stable_token import StableToken

__all__ = ["WeChat"]

BUSY = "微信服务繁忙，请稍后再试。"


class WeChat:
    channel = "wechat"

    def __init__(self, *, http: httpx.AsyncClient, base_url: str, appid: str, secret: str,
                 token: StableToken) -> None:
        self.http = http
        self.base_url = base_url
        self.appid = appid
        self._secret = secret
        self.token = token

    def __repr__(self) -> str:
        return f"WeChat(appid={self.appid!r})"

    async def identify(self, code: str, phone_code: str = "") -> ChannelIdentity:
        answer = await self._call("GET", "/sns/jscode2session", params={
            "appid": self.appid, "secret": self._secret, "js_code": code,
            "grant_type": "authorization_code"})
        answer.pop("session_key", None)  # never kept (see the module's docstring)
        openid = answer.get("openid")
        if not isinstance(openid, str) or not openid:
            raise ChannelError("server_error", "微信登录暂时无法完成，请稍后再试。")
        unionid = answer.get("unionid")
        phone = await self.phone_number(phone_code) if phone_code else ""
        return ChannelIdentity(self.channel, self.appid, openid,
                               unionid if isinstance(unionid, str) else "", phone)

    async def phone_number(self, phone_code: str) -> str:
        """The verified phone number behind a ``getPhoneNumber`` button's code."""
        access_token = await self.token.get()
        answer = await self._call("POST", "/wxa/business/getuserphonenumber",
                                  params={"access_token": access_token},
                                  json={"code": phone_code})
        info = answer.get("phone_info")
        number = info.get("purePhoneNumber") if isinstance(info, dict) else None
        if not isinstance(number, str) or not number:
            raise ChannelError("server_error", "微信登录暂时无法完成，请稍后再试。")
        return number

    async def _call(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        try:
            response = await self.http.request(method, f"{self.base_url}{path}", **options)
            answer = response.json()
        except (httpx.HTTPError, ValueError):
            raise ChannelError("temporarily_unavailable", BUSY, retry_after=5) from None
        if not isinstance(answer, dict):
            raise ChannelError("server_error", "微信登录暂时无法完成，请稍后再试。")
        errcode = int(answer.get("errcode") or 0)
        if errcode:
            raise wechat_error(errcode)
        return answer
