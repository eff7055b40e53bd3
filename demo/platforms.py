"""Real mock platforms: WeChat's login, phone and stable-token endpoints and the Alipay
gateway, as small Starlette apps the tests and the demo serve over real HTTP.

They behave as the platforms document: codes live five minutes and work once (40029
unknown, 40163 used), a user the platform flags is 40226, the stable token lives
``token_ttl`` seconds and is counted, and the Alipay gateway checks the app's RSA2
signature and signs its answers with its own key. ``/mock/…`` routes stand in for the
phone: they hand out the codes ``wx.login``, ``getPhoneNumber`` and ``my.getAuthCode``
would give a mini-program.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from demo import free_port
from gateway.channels import rsa2
from gateway.config import AlipayChannel, ChannelsSection, Config, WeChatChannel

__all__ = ["DEMO_ALIPAY_USERS", "DEMO_WECHAT", "AlipayPlatform", "WeChatPlatform", "WeChatUser",
           "demo_platforms"]

CODE_TTL = 300  # seconds a wx.login / getAuthCode code lives on the platforms


@dataclass
class WeChatUser:
    openid: str
    unionid: str = ""
    phone: str = ""
    risky: bool = False  # the platform answers 40226 for this user
    nickname: str = ""  # what the demo's mini-program page calls them


@dataclass
class WeChatPlatform:
    """``sns/jscode2session``, ``cgi-bin/stable_token``, ``wxa/business/getuserphonenumber``."""

    appid: str
    secret: str
    users: dict[str, WeChatUser] = field(default_factory=dict)
    token_ttl: int = 7200
    stable_token_calls: int = 0
    session_keys_sent: list[str] = field(default_factory=list)
    _codes: dict[str, tuple[str, int, float]] = field(default_factory=dict)  # code→user
    _used: set[str] = field(default_factory=set)
    _phone_codes: dict[str, tuple[str, float]] = field(default_factory=dict)
    _tokens: dict[str, float] = field(default_factory=dict)

    def login_code(self, openid: str, *, errcode: int = 0) -> str:
        """What ``wx.login`` gives the mini-program; ``errcode``: the platform's answer to
        it will be that error (45011 rate limit, -1 busy)."""
        code = secrets.token_hex(16)
        self._codes[code] = (openid, errcode, time.time() + CODE_TTL)
        return code

    def phone_code(self, openid: str) -> str:
        code = secrets.token_hex(16)
        self._phone_codes[code] = (openid, time.time() + CODE_TTL)
        return code

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/sns/jscode2session", self.jscode2session),
            Route("/cgi-bin/stable_token", self.stable_token, methods=["POST"]),
            Route("/wxa/business/getuserphonenumber", self.phone_number, methods=["POST"]),
            Route("/mock/login", self.mock_login, methods=["POST"]),
            Route("/mock/phone", self.mock_phone, methods=["POST"]),
        ])

    async def jscode2session(self, request: Request) -> Response:
        q = request.query_params
        if q.get("appid") != self.appid:
            return _wx(40013, "invalid appid")
        if q.get("secret") != self.secret:
            return _wx(40125, "invalid appsecret")
        code = q.get("js_code", "")
        if q.get("grant_type") != "authorization_code":
            return _wx(40002, "invalid grant_type")
        if code in self._used:
            return _wx(40163, "code been used")
        found = self._codes.get(code)
        if found is None or found[2] < time.time():
            return _wx(40029, "invalid code")
        openid, errcode, _ = found
        if errcode:
            return _wx(errcode, "rate limit" if errcode == 45011 else "system error")
        self._used.add(code)
        user = self.users[openid]
        if user.risky:
            return _wx(40226, "high risk user")
        session_key = secrets.token_urlsafe(16)
        self.session_keys_sent.append(session_key)
        answer: dict[str, Any] = {"openid": openid, "session_key": session_key}
        if user.unionid:
            answer["unionid"] = user.unionid
        return JSONResponse(answer)

    async def stable_token(self, request: Request) -> Response:
        body = await request.json()
        if body.get("grant_type") != "client_credential" or body.get("appid") != self.appid:
            return _wx(40013, "invalid appid")
        if body.get("secret") != self.secret:
            return _wx(40125, "invalid appsecret")
        self.stable_token_calls += 1
        token = secrets.token_urlsafe(24)
        self._tokens[token] = time.time() + self.token_ttl
        return JSONResponse({"access_token": token, "expires_in": self.token_ttl})

    async def phone_number(self, request: Request) -> Response:
        expires = self._tokens.get(request.query_params.get("access_token", ""), 0)
        if expires < time.time():
            return _wx(40001, "invalid credential, access_token is invalid or not latest")
        code = str((await request.json()).get("code", ""))
        found = self._phone_codes.pop(code, None)
        if found is None or found[1] < time.time():
            return _wx(40029, "invalid code")
        phone = self.users[found[0]].phone
        return JSONResponse({"errcode": 0, "errmsg": "ok", "phone_info": {
            "phoneNumber": phone, "purePhoneNumber": phone, "countryCode": "86",
            "watermark": {"timestamp": int(time.time()), "appid": self.appid}}})

    async def mock_login(self, request: Request) -> Response:
        body = await request.json()
        if body.get("openid") not in self.users:
            return JSONResponse({"error": "no such user"}, status_code=404)
        return JSONResponse({"code": self.login_code(body["openid"],
                                                     errcode=int(body.get("errcode", 0)))})

    async def mock_phone(self, request: Request) -> Response:
        body = await request.json()
        if body.get("openid") not in self.users:
            return JSONResponse({"error": "no such user"}, status_code=404)
        return JSONResponse({"code": self.phone_code(body["openid"])})


def _wx(errcode: int, errmsg: str) -> Response:
    return JSONResponse({"errcode": errcode, "errmsg": errmsg})


@dataclass
class AlipayPlatform:
    """The Alipay gateway's ``alipay.system.oauth.token``, RSA2 both ways."""

    app_id: str
    app_public_key: rsa.RSAPublicKey  # checks the app's requests
    private_key: rsa.RSAPrivateKey  # signs the platform's answers
    tamper: bool = False  # answer with a signature that does not match the body
    busy: bool = False  # answer 20000 isp.unknow-error (the gateway's "try again later")
    _codes: dict[str, tuple[str, float]] = field(default_factory=dict)

    def auth_code(self, user_id: str) -> str:
        """What ``my.getAuthCode`` gives the mini-program."""
        code = secrets.token_hex(16)
        self._codes[code] = (user_id, time.time() + CODE_TTL)
        return code

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/gateway.do", self.gateway, methods=["POST"]),
            Route("/mock/auth-code", self.mock_code, methods=["POST"]),
        ])

    async def gateway(self, request: Request) -> Response:
        params = {k: str(v) for k, v in (await request.form()).items()}
        if params.get("app_id") != self.app_id:
            return self._error("40002", "isv.invalid-app-id", "无效的AppID参数")
        if params.get("sign_type") != "RSA2" or not rsa2.verify(
                self.app_public_key, rsa2.signing_string(params), params.get("sign", "")):
            return self._error("40002", "isv.invalid-signature", "验签出错")
        if self.busy:
            return self._error("20000", "isp.unknow-error", "系统繁忙",
                               msg="Service Currently Unavailable")
        if params.get("method") != "alipay.system.oauth.token":
            return self._error("40002", "isv.invalid-method", "不存在的方法名")
        found = self._codes.pop(params.get("code", ""), None)
        if params.get("grant_type") != "authorization_code" or found is None \
                or found[1] < time.time():
            return self._error("40002", "isv.code-invalid", "授权码code无效")
        user_id = found[0]
        return self._signed("alipay_system_oauth_token_response", {
            "user_id": user_id, "open_id": "0" + user_id[::-1],
            "access_token": "authusrB" + secrets.token_hex(12), "expires_in": 1296000,
            "refresh_token": "authusrB" + secrets.token_hex(12), "re_expires_in": 2592000,
            "auth_start": time.strftime("%Y-%m-%d %H:%M:%S")})

    async def mock_code(self, request: Request) -> Response:
        body = await request.json()
        return JSONResponse({"auth_code": self.auth_code(str(body["user_id"]))})

    def _error(self, code: str, sub_code: str, sub_msg: str,
               msg: str = "Invalid Arguments") -> Response:
        return self._signed("error_response", {"code": code, "msg": msg,
                                               "sub_code": sub_code, "sub_msg": sub_msg})

    def _signed(self, name: str, body: dict[str, Any]) -> Response:
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        signature = rsa2.sign(self.private_key, content)
        if self.tamper:
            content = content.replace('"user_id":"', '"user_id":"2088')
        text = f'{{"{name}":{content},"sign":"{signature}"}}'
        return Response(text, media_type="application/json;charset=utf-8")


DEMO_WECHAT = WeChatPlatform(
    "wx5f2e0c1d9a7b3c41", "demo-wechat-appsecret-not-a-real-one",  # fictional, printed
    users={"o-demo-zhang": WeChatUser("o-demo-zhang", unionid="u-demo-zhang",
                                      phone="13800000091", nickname="湘江小张"),
           "o-demo-li": WeChatUser("o-demo-li", nickname="岳麓小李")})
"""The demo's WeChat (fictional users); ``demo_platforms`` serves it."""

DEMO_ALIPAY_USERS: dict[str, str] = {"2088000000000101": "小张的支付宝",
                                     "2088000000000102": "小李的支付宝"}
"""The demo's Alipay users (fictional user_id → nickname) its mini-program page offers;
the mock Alipay gives a code for any user_id."""

WECHAT_SECRET_ENV = "ROAM_WECHAT_SECRET"  # the demo's roam.toml example names it


def demo_platforms(config: Config, key_dir: Path) -> tuple[Config, dict[str, str],
                                                         list[tuple[Starlette, int]]]:
    """``config`` with both channels pointing at mock platforms on free loopback ports
    (the banner prints them), the environment the gateway then needs (the AppSecret's
    variable), and the mock apps with their ports. Alipay's key pairs are made afresh in
    ``key_dir``."""
    wechat_port, alipay_port = free_port(), free_port()
    app_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    platform_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_file, public_file = key_dir / "alipay-app-private.pem", key_dir / "alipay-public.pem"
    private_file.write_bytes(app_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    public_file.write_bytes(platform_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    alipay = AlipayPlatform("2021004112345678", app_key.public_key(), platform_key)
    channels = ChannelsSection(
        wechat=WeChatChannel(appid=DEMO_WECHAT.appid, secret_env=WECHAT_SECRET_ENV,
                             base_url=f"http://127.0.0.1:{wechat_port}"),
        alipay=AlipayChannel(app_id=alipay.app_id, private_key_file=str(private_file),
                             platform_public_key_file=str(public_file),
                             gateway_url=f"http://127.0.0.1:{alipay_port}/gateway.do"))
    revised = config.revised(settings=config.settings.model_copy(update={"channels": channels}))
    return (revised, {WECHAT_SECRET_ENV: DEMO_WECHAT.secret},
            [(DEMO_WECHAT.app(), wechat_port), (alipay.app(), alipay_port)])

