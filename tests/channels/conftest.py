"""Mock WeChat and Alipay served over real HTTP, and gateways configured to use them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from demo.platforms import AlipayPlatform, WeChatPlatform, WeChatUser
from gateway.app import create_app
from gateway.config import AlipayChannel, ChannelsSection, Config, WeChatChannel
from tests.support.gateway import config_on_port
from tests.support.servers import free_port, serve

APPID = "wx5f2e0c1d9a7b3c41"
SECRET = "wx-test-app-secret-7c1e9a2b5d3f4e60"
SECRET_ENV = "ROAM_TEST_WECHAT_SECRET"
ALIPAY_APP = "2021004112345678"
MINIAPP = "hunan-miniapp"
CHANNEL_GRANT = "urn:roam:params:oauth:grant-type:channel-code"
PHONE = "13912345678"


@dataclass
class Platforms:
    wechat: WeChatPlatform
    wechat_url: str
    alipay: AlipayPlatform
    alipay_url: str
    key_dir: Path


def _pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_public(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platforms]:
    key_dir = tmp_path_factory.mktemp("alipay-keys")
    app_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    platform_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (key_dir / "app-private.pem").write_bytes(_pem_private(app_key))
    (key_dir / "alipay-public.pem").write_bytes(_pem_public(platform_key.public_key()))
    wechat = WeChatPlatform(APPID, SECRET, users={
        "o-alice": WeChatUser("o-alice", unionid="u-alice", phone=PHONE),
        "o-bob": WeChatUser("o-bob"),
        "o-risky": WeChatUser("o-risky", risky=True),
    })
    alipay = AlipayPlatform(ALIPAY_APP, app_key.public_key(), platform_key)
    with serve(wechat.app()) as wechat_url, serve(alipay.app()) as alipay_url:
        yield Platforms(wechat, wechat_url, alipay, alipay_url, key_dir)


def channel_config(port: int, platforms: Platforms,
                   clients: dict[str, dict[str, Any]] | None = None, **store: str) -> Config:
    config = config_on_port(port, clients=clients, **store)
    channels = ChannelsSection(
        wechat=WeChatChannel(appid=APPID, secret_env=SECRET_ENV, base_url=platforms.wechat_url),
        alipay=AlipayChannel(app_id=ALIPAY_APP,
                             private_key_file=str(platforms.key_dir / "app-private.pem"),
                             platform_public_key_file=str(platforms.key_dir / "alipay-public.pem"),
                             gateway_url=f"{platforms.alipay_url}/gateway.do"))
    return config.revised(settings=config.settings.model_copy(update={"channels": channels}))


@contextlib.contextmanager
def channel_gateway(platforms: Platforms, clients: dict[str, dict[str, Any]] | None = None,
                    **store: str) -> Iterator[str]:
    """A real gateway (app served over HTTP) whose channels are the mock platforms."""
    port = free_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv(SECRET_ENV, SECRET)
        app = create_app(channel_config(port, platforms, clients, **store))
    with serve(app, port) as url:
        yield url


@pytest.fixture(scope="module")
def gateway_url(platforms: Platforms) -> Iterator[str]:
    with channel_gateway(platforms) as url:
        yield url


def channel_form(channel: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"grant_type": CHANNEL_GRANT, "client_id": MINIAPP, "channel": channel,
            "code": code, "scope": "openid phone offline_access", **extra}
