"""The server side of the demo's mini-program: what its backend asks of the platforms, the
gateway and the verification service.

A real mini-program calls ``wx.login`` / ``my.getAuthCode`` on the phone and sends the
code to its own server, which posts it to the gateway's ``/token`` as the public client
``hunan-miniapp`` (the extension grant of gateway/oidc/channel_grant.py). Here the mock
platforms' ``/mock/…`` routes stand in for the phone, and the token request goes through
authlib's OAuth 2 client; the ID token is checked against the gateway's JWKS (``iss``,
``aud``, ``exp``) before anything it says is shown. Binding, the face check and the
one-time transfer URL are the gateway's own JSON APIs with the access token as bearer.

Every failure is a :class:`Refused` with a Chinese message for the page: the gateway's own
description when it wrote one in Chinese, else what its RFC error code means.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

# authlib 1.9 prefers the httpx2 fork and says so when its httpx client is imported; its
# deprecate module installs an "always" filter when imported, so it goes first.
import authlib.deprecate  # noqa: F401
import httpx
from authlib.common.errors import AuthlibBaseError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client

__all__ = ["CHANNEL_GRANT", "CLIENT_ID", "Login", "MiniProgramBackend", "Refused"]

CHANNEL_GRANT = "urn:roam:params:oauth:grant-type:channel-code"
CLIENT_ID = "hunan-miniapp"
SCOPE = "openid profile phone offline_access"

#: What the gateway's RFC error codes mean to the person holding the phone.
ERROR_TEXT = {
    "invalid_grant": "登录凭证无效或已使用，请重新登录。",
    "invalid_token": "登录已失效，请重新登录。",
    "invalid_request": "请求有误，请检查填写的内容。",
    "invalid_client": "小程序未在统一身份认证平台登记。",
    "unauthorized_client": "小程序无权使用该登录方式。",
    "insufficient_scope": "当前登录令牌不能办理此操作。",
    "access_denied": "请求被拒绝。",
    "authorization_pending": "人脸核验尚未完成。",
    "temporarily_unavailable": "服务繁忙，请稍后再试。",
    "server_error": "统一身份认证平台出错，请稍后再试。",
}
_CHINESE = re.compile(r"[\u4e00-\u9fff]")


class Refused(Exception):
    """A step failed; ``message`` is for the page (Chinese), ``code`` the RFC error."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _refused(error: str, description: str = "") -> Refused:
    if description and _CHINESE.search(description):
        return Refused(description, error)
    return Refused(ERROR_TEXT.get(error, "操作未能完成，请稍后再试。"), error)


@dataclass
class Login:
    """One channel login: the tokens (kept server side) and what the page shows."""

    channel: str
    account: str  # the platform's user (openid / user_id)
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    claims: dict[str, Any]  # the ID token's, checked
    userinfo: dict[str, Any]

    @property
    def sub(self) -> str:
        return str(self.claims["sub"])

    @property
    def verified_level(self) -> str:
        return str(self.userinfo.get("verified_level") or "L1")


class MiniProgramBackend:
    """The calls, over one shared ``httpx.AsyncClient`` (the page app's lifespan owns it)."""

    def __init__(self, http: httpx.AsyncClient, *, issuer: str, wechat_url: str,
                 alipay_url: str, verification_url: str) -> None:
        self.http = http
        self.issuer = issuer.rstrip("/")
        self.wechat_url = wechat_url.rstrip("/")
        self.alipay_url = alipay_url.rstrip("/")  # the mock's origin (its /mock/auth-code)
        self.verification_url = verification_url.rstrip("/")
        self._metadata: dict[str, Any] = {}

    async def metadata(self) -> dict[str, Any]:
        """The gateway's discovery document (read once): its token, userinfo and JWKS
        endpoints."""
        if not self._metadata:
            self._metadata = await self._json(
                "GET", f"{self.issuer}/.well-known/openid-configuration")
        return self._metadata

    async def _json(self, method: str, url: str, *, token: str = "",
                    **kwargs: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await self.http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError:
            raise Refused("无法连接服务，请确认演示程序仍在运行。", "unreachable") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise Refused(f"服务返回了无法识别的应答（HTTP {response.status_code}）。",
                          "server_error")
        if response.status_code >= 400 or "error" in data:
            raise _refused(str(data.get("error", "server_error")),
                           str(data.get("error_description", "")))
        return data

    async def platform_codes(self, channel: str, account: str, *,
                             phone: bool) -> dict[str, str]:
        """What ``wx.login`` (and the ``getPhoneNumber`` button) or ``my.getAuthCode``
        would give the mini-program on the phone: the mocks hand them out."""
        if channel == "wechat":
            found = await self._json("POST", f"{self.wechat_url}/mock/login",
                                     json={"openid": account})
            codes = {"code": str(found["code"])}
            if phone:
                found = await self._json("POST", f"{self.wechat_url}/mock/phone",
                                         json={"openid": account})
                codes["phone_code"] = str(found["code"])
            return codes
        found = await self._json("POST", f"{self.alipay_url}/mock/auth-code",
                                 json={"user_id": account})
        return {"code": str(found["auth_code"])}

    async def log_in(self, channel: str, account: str, *, phone: bool = False) -> Login:
        """A fresh platform code, redeemed at the gateway's ``/token``."""
        codes = await self.platform_codes(channel, account, phone=phone)
        metadata = await self.metadata()
        async with AsyncOAuth2Client(client_id=CLIENT_ID, token_endpoint_auth_method="none",  # noqa: S106
                                     scope=SCOPE, timeout=10.0) as oauth:
            try:
                token = await oauth.fetch_token(metadata["token_endpoint"],
                                                grant_type=CHANNEL_GRANT, channel=channel,
                                                **codes)
            except AuthlibBaseError as exc:
                raise _refused(str(exc.error or "server_error"), exc.description or "") from None
            except httpx.HTTPError:
                raise Refused("无法连接统一身份认证平台。", "unreachable") from None
        access_token = str(token["access_token"])
        claims = await self._id_token_claims(str(token.get("id_token", "")),
                                             str(metadata["jwks_uri"]))
        userinfo = await self._json("GET", str(metadata["userinfo_endpoint"]),
                                    token=access_token)
        if userinfo.get("sub") != claims.get("sub"):  # OIDC Core §5.3.2
            raise Refused("用户信息与身份令牌不属于同一人，已拒绝。", "invalid_userinfo")
        return Login(channel, account, access_token, str(token.get("refresh_token", "")),
                     claims, userinfo)

    async def _id_token_claims(self, id_token: str, jwks_uri: str) -> dict[str, Any]:
        jwks: Any = await self._json("GET", jwks_uri)
        keys = KeySet.import_key_set(jwks)
        try:
            decoded = jwt.decode(id_token, keys)
            jwt.JWTClaimsRegistry(iss={"essential": True, "value": self.issuer},
                                  aud={"essential": True, "value": CLIENT_ID},
                                  sub={"essential": True},
                                  exp={"essential": True}).validate(decoded.claims)
        except (JoseError, ValueError):
            raise Refused("身份令牌校验未通过，已拒绝。", "invalid_id_token") from None
        return dict(decoded.claims)

    async def bind(self, login: Login, name: str, id_number: str) -> dict[str, Any]:
        """Real name → L2 (and a face check started: its ``verification_id``)."""
        return await self._json("POST", f"{self.issuer}/channel/bind", token=login.access_token,
                                json={"name": name, "id_number": id_number})

    async def scan_face(self, verification_id: str, outcome: str) -> None:
        """The person's (simulated) face scan: the phone talks to the verification service
        with the id; the gateway later asks the service, never the phone."""
        await self._json("POST", f"{self.verification_url}/v1/face/sessions/"
                         f"{verification_id}/scan", json={"outcome": outcome})

    async def face(self, login: Login, verification_id: str) -> dict[str, Any]:
        """The face check's result, fetched by the gateway → L3."""
        return await self._json("POST", f"{self.issuer}/channel/bind/face",
                                token=login.access_token,
                                json={"verification_id": verification_id})

    async def transfer_url(self, login: Login, target: str) -> dict[str, Any]:
        """A one-time URL (无感切换) into ``target`` for the web-view."""
        return await self._json("POST", f"{self.issuer}/sso/transfer-ticket",
                                token=login.access_token, data={"target": target})
