"""The mini-program's backend (demo/miniprogram_client.py) against the demo's real
gateway and mocks: what the page shows when the gateway answers in English, in Chinese,
or not at all. The flows themselves are test_miniprogram.py's, in a browser."""

from __future__ import annotations

import httpx
import pytest

from demo.miniprogram_client import MiniProgramBackend, Refused
from tests.support.demo import MiniProgramDemo
from tests.support.servers import free_port


async def test_refusals_are_explained_in_chinese(miniprogram_demo: MiniProgramDemo) -> None:
    demo = miniprogram_demo
    async with httpx.AsyncClient(timeout=10) as http:
        backend = MiniProgramBackend(http, issuer=demo.gateway, **demo.platforms)
        login = await backend.log_in("alipay", "2088000000000199")
        assert login.sub.startswith("ch-")
        with pytest.raises(Refused) as refused:  # the gateway says it in English
            await backend.transfer_url(login, "https://evil.example/")
        assert (refused.value.code, refused.value.message) == (
            "invalid_request", "请求有误，请检查填写的内容。")
        with pytest.raises(Refused) as refused:
            await backend.face(login, "no-such-check")  # the gateway's own Chinese
        assert refused.value.message == "人脸核验不存在或已过期，请重新核验"
        gone = MiniProgramBackend(http, issuer=f"http://127.0.0.1:{free_port()}",
                                  **demo.platforms)
        with pytest.raises(Refused) as refused:
            await gone.log_in("alipay", "2088000000000199")
        assert refused.value.code == "unreachable"
