"""Alipay mini-program login: ``alipay.system.oauth.token`` through the Alipay gateway.

The request is signed RSA2 with the app's private key; the answer's ``sign`` is checked
with Alipay's public key over the response object's JSON text exactly as sent, before
anything in it is believed. An answer that fails the check is refused and logged (the
method and the outcome, never the body).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.channels import rsa2
from gateway.channels.errors import RETRY_AFTER, ChannelError
from gateway.channels.identity import ChannelIdentity

__all__ = ["METHOD", "Alipay"]

log = logging.getLogger("roam.channels")

METHOD = "alipay.system.oauth.token"
RESPONSE = "alipay_system_oauth_token_response"
BUSY = "支付宝服务繁忙，请稍后再试。"
RELOGIN = "登录凭证无效或已使用，请重新登录。"
INVALID_CODE = {"isv.code-invalid", "isv.code-expired", "isv.code-used"}


class Alipay:
    channel = "alipay"

    def __init__(self, *, http: httpx.AsyncClient, gateway_url: str, app_id: str,
                 private_key: rsa.RSAPrivateKey, platform_key: rsa.RSAPublicKey) -> None:
        self.http = http
        self.gateway_url = gateway_url
        self.appid = app_id
        self._private_key = private_key
        self.platform_key = platform_key

    def __repr__(self) -> str:
        return f"Alipay(app_id={self.appid!r})"

    async def identify(self, code: str, phone_code: str = "") -> ChannelIdentity:
        if phone_code:
            raise ChannelError("invalid_grant", "支付宝渠道暂不支持手机号授权。")
        params = {
            "app_id": self.appid, "method": METHOD, "format": "JSON", "charset": "utf-8",
            "sign_type": "RSA2", "timestamp": time.strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0", "grant_type": "authorization_code", "code": code,
        }
        params["sign"] = rsa2.sign(self._private_key, rsa2.signing_string(params))
        try:
            response = await self.http.post(self.gateway_url, data=params)
            text = response.text
        except httpx.HTTPError:
            raise ChannelError("temporarily_unavailable", BUSY, retry_after=RETRY_AFTER) from None
        body = self._verified(text)
        return self._identity(body)

    def _verified(self, text: str) -> dict[str, Any]:
        """The response object, once its signature holds; else refused and logged."""
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ChannelError("temporarily_unavailable", BUSY, retry_after=RETRY_AFTER)
        name = RESPONSE if RESPONSE in answer else "error_response"
        content = rsa2.response_content(text, name)
        signature = answer.get("sign")
        if (content is None or not isinstance(signature, str)
                or not rsa2.verify(self.platform_key, content, signature)):
            log.warning("alipay answer with a bad signature refused",
                        extra={"channel": self.channel, "appid": self.appid, "method": METHOD})
            raise ChannelError("invalid_grant", "支付宝登录校验失败，请重新登录。",
                               platform_code="bad-signature")
        body = answer[name]
        if not isinstance(body, dict):  # pragma: no cover - signed by Alipay as an object
            raise ChannelError("server_error", BUSY)
        return body

    def _identity(self, body: dict[str, Any]) -> ChannelIdentity:
        code, sub_code = str(body.get("code", "10000")), str(body.get("sub_code", ""))
        if code != "10000" and "user_id" not in body and "open_id" not in body:
            if sub_code in INVALID_CODE or code == "40002":
                raise ChannelError("invalid_grant", RELOGIN, platform_code=sub_code or code)
            if code in ("20000", "20001") or sub_code.startswith("aop.") or "limit" in sub_code:
                raise ChannelError("temporarily_unavailable", BUSY, platform_code=code,
                                   retry_after=RETRY_AFTER)
            raise ChannelError("server_error", BUSY, platform_code=sub_code or code)
        user = body.get("open_id") or body.get("user_id")
        if not isinstance(user, str) or not user:
            raise ChannelError("server_error", BUSY)
        # access_token / refresh_token of Alipay's answer are not needed and not kept.
        return ChannelIdentity(self.channel, self.appid, user,
                               str(body.get("union_id") or ""))
