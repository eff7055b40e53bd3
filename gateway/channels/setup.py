"""The configured channels, opened: secrets read from the environment, keys from files."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from gateway.channels import rsa2
from gateway.channels.alipay import Alipay
from gateway.channels.login import Channel, ChannelLogin, Resolve
from gateway.channels.stable_token import StableToken
from gateway.channels.wechat import WeChat
from gateway.config import ChannelsSection
from gateway.errors import ConfigError
from gateway.logs import quiet_outbound_logs
from gateway.store.base import Store

__all__ = ["open_channels"]


def open_channels(section: ChannelsSection, *, http: httpx.AsyncClient, store: Store,
                  path: Callable[[str], Path], account_ttl: int,
                  env: Mapping[str, str] | None = None,
                  resolve: Resolve | None = None) -> ChannelLogin:
    """``ConfigError`` naming the key when a secret's variable is unset or a key file
    cannot be read: at start-up, never at a citizen's login."""
    env = os.environ if env is None else env
    if section.wechat is not None:
        quiet_outbound_logs()  # its calls carry the AppSecret in the URL
    channels: dict[str, Channel] = {}
    problems: list[str] = []
    if (wechat := section.wechat) is not None:
        secret = env.get(wechat.secret_env, "")
        if not secret:
            problems.append(f"channels.wechat.secret_env: environment variable "
                            f"{wechat.secret_env} is not set")
        token = StableToken(http=http, store=store, base_url=wechat.base_url,
                            appid=wechat.appid, secret=secret, margin=wechat.token_margin)
        channels["wechat"] = WeChat(http=http, base_url=wechat.base_url, appid=wechat.appid,
                                    secret=secret, token=token)
    if (alipay := section.alipay) is not None:
        try:
            private = rsa2.load_private_key(path(alipay.private_key_file))
            public = rsa2.load_public_key(path(alipay.platform_public_key_file))
        except (OSError, ValueError) as error:
            problems.append(f"channels.alipay: {error}")
        else:
            channels["alipay"] = Alipay(http=http, gateway_url=alipay.gateway_url,
                                        app_id=alipay.app_id, private_key=private,
                                        platform_key=public)
    if problems:
        raise ConfigError(problems)
    return ChannelLogin(channels, store=store, code_ttl=section.code_ttl,
                        account_ttl=account_ttl, resolve=resolve)
