"""The demo's mock platforms: a mini-program login with `make demo`'s own wiring."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest

from demo.platforms import demo_platforms
from gateway.app import create_app
from tests.support.gateway import config_on_port
from tests.support.servers import free_port, serve

GRANT = "urn:roam:params:oauth:grant-type:channel-code"


def test_demo_platforms_log_a_wechat_and_an_alipay_user_in(tmp_path: Path) -> None:
    port = free_port()
    config, env, platforms = demo_platforms(config_on_port(port), tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        app = create_app(config)
    with contextlib.ExitStack() as stack:
        for mock, mock_port in platforms:
            stack.enter_context(serve(mock, mock_port))
        gateway = stack.enter_context(serve(app, port))
        wechat = config.settings.channels.wechat
        alipay = config.settings.channels.alipay
        assert wechat is not None
        assert alipay is not None
        code = httpx.post(f"{wechat.base_url}/mock/login",
                          json={"openid": "o-demo-zhang"}).json()["code"]
        phone = httpx.post(f"{wechat.base_url}/mock/phone",
                           json={"openid": "o-demo-zhang"}).json()["code"]
        token = httpx.post(f"{gateway}/token", data={
            "grant_type": GRANT, "client_id": "hunan-miniapp", "channel": "wechat",
            "code": code, "phone_code": phone, "scope": "openid phone"})
        assert token.status_code == 200, token.text
        info = httpx.get(f"{gateway}/userinfo", headers={
            "Authorization": f"Bearer {token.json()['access_token']}"}).json()
        assert info["phone_number_verified"] is True
        auth_code = httpx.post(alipay.gateway_url.replace("/gateway.do", "/mock/auth-code"),
                               json={"user_id": "2088000000000001"}).json()["auth_code"]
        token = httpx.post(f"{gateway}/token", data={
            "grant_type": GRANT, "client_id": "hunan-miniapp", "channel": "alipay",
            "code": auth_code})
        assert token.status_code == 200, token.text
