"""Channels open at start-up or the gateway does not start, naming the key."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from gateway.channels.setup import open_channels
from gateway.config import AlipayChannel, ChannelsSection, WeChatChannel
from gateway.errors import ConfigError
from gateway.store.memory import MemoryStore


async def test_a_missing_secret_or_key_file_is_a_config_error(tmp_path: Path) -> None:
    section = ChannelsSection(
        wechat=WeChatChannel(appid="wx1", secret_env="ROAM_TEST_UNSET_SECRET"),
        alipay=AlipayChannel(app_id="2021", private_key_file="nope.pem",
                             platform_public_key_file="nope.pem"))
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigError) as raised:
            open_channels(section, http=http, store=MemoryStore(), path=tmp_path.joinpath,
                          account_ttl=60, env={})
    text = str(raised.value)
    assert "channels.wechat.secret_env" in text
    assert "ROAM_TEST_UNSET_SECRET" in text
    assert "channels.alipay" in text


async def test_no_channels_no_grant() -> None:
    async with httpx.AsyncClient() as http:
        login = open_channels(ChannelsSection(), http=http, store=MemoryStore(),
                              path=Path, account_ttl=60, env={})
    assert login.names == ()


def test_platform_urls_must_be_https_off_loopback() -> None:
    with pytest.raises(ValidationError):
        WeChatChannel(appid="wx1", secret_env="X", base_url="http://api.example.com")
    with pytest.raises(ValidationError):
        WeChatChannel(appid="wx1", secret_env="lower-case")  # not an env variable name
