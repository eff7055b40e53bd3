"""The mock platforms of ``bench/miniprogram.py``, in a process of their own.

Run by the bench as ``python -m bench._platforms --port N --key-dir DIR --users N``, with
the WeChat AppSecret in the environment (``SECRET_ENV``: this run's secret of the bench
clients). One uvicorn worker, set up as the gateway's (``gateway/server.py``), serves
``demo/platforms.py``'s WeChat under ``/wechat`` and Alipay gateway under ``/alipay``, so
the gateway's CPU is the gateway's alone and the mocks' own cost can be measured apart.

``POST /bench/codes`` (JSON ``{"channel": "wechat"|"alipay", "count": n, "fresh": b}``)
stands in for many phones at once: it answers with ``n`` codes as ``wx.login`` or
``my.getAuthCode`` would give them, spread over ``--users`` users; with ``fresh`` it first
replaces the channel's platform by a new one, so nothing of earlier rounds is kept.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from bench.processes import SECRET_ENV
from demo.platforms import AlipayPlatform, WeChatPlatform, WeChatUser
from gateway.channels import rsa2
from gateway.config import AlipayChannel, ChannelsSection, WeChatChannel
from gateway.server import uvicorn_config

WECHAT_APPID = "wx0bench0miniapp01"  # fictional
ALIPAY_APP_ID = "2021000000000001"  # fictional
APP_PRIVATE, APP_PUBLIC = "app-private.pem", "app-public.pem"  # the mini-program's RSA2 pair
PLATFORM_PRIVATE, PLATFORM_PUBLIC = "alipay-private.pem", "alipay-public.pem"  # Alipay's
CHANNELS = ("wechat", "alipay")


def write_keys(key_dir: Path) -> None:
    """The two RSA2 key pairs: the app's (it signs, Alipay checks) and Alipay's."""
    for private_name, public_name in ((APP_PRIVATE, APP_PUBLIC),
                                      (PLATFORM_PRIVATE, PLATFORM_PUBLIC)):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (key_dir / private_name).write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        (key_dir / public_name).write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def channels_section(base: str, key_dir: Path) -> ChannelsSection:
    """The gateway's ``[channels]`` for the mocks served at ``base``; the AppSecret is the
    value of ``SECRET_ENV`` in the gateway's environment."""
    return ChannelsSection(
        wechat=WeChatChannel(appid=WECHAT_APPID, secret_env=SECRET_ENV,
                             base_url=f"{base}/wechat"),
        alipay=AlipayChannel(app_id=ALIPAY_APP_ID, private_key_file=str(key_dir / APP_PRIVATE),
                             platform_public_key_file=str(key_dir / PLATFORM_PUBLIC),
                             gateway_url=f"{base}/alipay/gateway.do"))


def openid(index: int) -> str:
    return f"o-bench-{index:04d}"


def alipay_user(index: int) -> str:
    return f"2088{index:012d}"


class Renewable:
    """An ASGI app standing for the platform ``make`` made last (``renew``)."""

    def __init__(self, make: Callable[[], WeChatPlatform | AlipayPlatform]) -> None:
        self.make = make
        self.renew()

    def renew(self) -> None:
        self.platform = self.make()
        self.app = self.platform.app()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def build_app(*, secret: str, key_dir: Path, users: int) -> Starlette:
    people = {"wechat": [openid(i) for i in range(users)],
              "alipay": [alipay_user(i) for i in range(users)]}
    app_public = rsa2.load_public_key(key_dir / APP_PUBLIC)
    platform_private = rsa2.load_private_key(key_dir / PLATFORM_PRIVATE)
    mocks = {
        "wechat": Renewable(lambda: WeChatPlatform(
            WECHAT_APPID, secret, users={o: WeChatUser(o) for o in people["wechat"]})),
        "alipay": Renewable(lambda: AlipayPlatform(ALIPAY_APP_ID, app_public,
                                                   platform_private)),
    }

    async def codes(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        channel = str(body["channel"])
        mock = mocks[channel]
        if body.get("fresh"):
            mock.renew()
        platform = mock.platform
        mint = (platform.login_code if isinstance(platform, WeChatPlatform)
                else platform.auth_code)
        return JSONResponse({"codes": [mint(people[channel][i % users])
                                       for i in range(int(body["count"]))]})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"pid": os.getpid()})

    return Starlette(routes=[
        Route("/bench/codes", codes, methods=["POST"]),
        Route("/healthz", healthz),
        Mount("/wechat", app=mocks["wechat"]),
        Mount("/alipay", app=mocks["alipay"]),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key-dir", type=Path, required=True)
    parser.add_argument("--users", type=int, default=16)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        parser.error(f"{SECRET_ENV} must hold the WeChat AppSecret")
    app = build_app(secret=secret, key_dir=args.key_dir, users=max(1, args.users))
    uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=args.port, access_log=False,
                                  log_level="warning")).run()


if __name__ == "__main__":
    main()
