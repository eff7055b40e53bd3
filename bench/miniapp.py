"""What the mini-program, its web-view and the platforms do, for ``bench/miniprogram.py``.

Request bodies are made before a round (``Pool``): codes minted in the mock platform as
many phones' ``wx.login`` / ``my.getAuthCode`` would give them, and the Alipay requests
sent straight to the mock signed RSA2, so neither the minting nor the client's signing
falls in a measured window. Each step checks the answer and raises ``RuntimeError`` if it
is not the expected one. Codes are fetched on a connection of their own: the round's
connections are opened after the pool is made, so none of them can have been closed by
the server (after its keep-alive timeout) while this process was busy making it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import urlencode

import aiohttp
import yarl

from bench._platforms import ALIPAY_APP_ID, APP_PRIVATE, WECHAT_APPID
from bench.flows import TOKEN_PATH, location
from bench.processes import ServerProcess
from bench.proxy import Child
from bench.rounds import Step
from bench.sso import hop
from gateway.channels import rsa2
from gateway.channels.alipay import METHOD
from gateway.login.transfer import TICKET_PATH
from gateway.oidc.channel_grant import CHANNEL_GRANT

MINIAPP = "hunan-miniapp"  # config/clients.toml: public, channel grant, transfer tickets
SCOPE = "openid offline_access"  # the app keeps its login: a refresh token too
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

T = TypeVar("T")


class Pool(Generic[T]):
    """Request bodies made ahead; topped up in batches (``topped_up`` counts it) if a round
    outruns the estimate, without dropping codes already handed out."""

    def __init__(self, make: Callable[[int, bool], Awaitable[list[T]]], *, batch: int) -> None:
        self.make = make  # (count, fresh) -> bodies
        self.batch = batch
        self.items: list[T] = []
        self.topped_up = 0
        self.lock = asyncio.Lock()

    async def fill(self, count: int) -> None:
        self.items = await self.make(count, True)

    async def take(self) -> T:
        while not self.items:
            async with self.lock:
                if not self.items:
                    self.items = await self.make(self.batch, False)
                    self.topped_up += 1
        return self.items.pop()


class Platforms:
    """The mock platforms' process (``bench/_platforms.py``) and how to ask it for codes."""

    def __init__(self, child: Child, *, secret: str, key_dir: Path) -> None:
        self.child = child
        self.secret = secret  # the WeChat AppSecret
        self.key = rsa2.load_private_key(key_dir / APP_PRIVATE)  # the app's RSA2 key

    async def codes(self, channel: str, count: int, fresh: bool) -> list[str]:
        async with aiohttp.ClientSession() as http, http.post(
                self.child.base + "/bench/codes",
                json={"channel": channel, "count": count, "fresh": fresh}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"the mock platforms gave no codes: HTTP {resp.status}")
            body = await resp.json()
        return [str(code) for code in body["codes"]]

    def signing_rate(self) -> float:
        """RSA2 signatures per second on this machine: the most Alipay answers the mock
        (one process, one signature per answer) can give."""
        started = time.perf_counter()
        for n in range(20):
            rsa2.sign(self.key, f"{n:0200d}")
        return 20 / (time.perf_counter() - started)

    # -- the platforms alone --------------------------------------------------------------

    async def direct_requests(self, channel: str, count: int, fresh: bool) -> list[str | bytes]:
        """What the gateway would send the platform for ``count`` fresh codes: WeChat's
        ``jscode2session`` URLs, or signed ``alipay.system.oauth.token`` forms."""
        codes = await self.codes(channel, count, fresh)
        if channel == "wechat":
            base = f"{self.child.base}/wechat/sns/jscode2session?"
            return [base + urlencode({"appid": WECHAT_APPID, "secret": self.secret,
                                      "js_code": code, "grant_type": "authorization_code"})
                    for code in codes]
        # Signing takes seconds: off the event loop, which meanwhile notices the idle
        # connections the servers close (else a request could go out on one of them).
        return await asyncio.to_thread(lambda: [self.alipay_form(code) for code in codes])

    def alipay_form(self, code: str) -> bytes:
        params = {"app_id": ALIPAY_APP_ID, "method": METHOD, "format": "JSON",
                  "charset": "utf-8", "sign_type": "RSA2",
                  "timestamp": time.strftime("%Y-%m-%d %H:%M:%S"), "version": "1.0",
                  "grant_type": "authorization_code", "code": code}
        params["sign"] = rsa2.sign(self.key, rsa2.signing_string(params))
        return urlencode(params).encode()

    def direct_step(self, http: aiohttp.ClientSession, channel: str,
                    pool: Pool[str | bytes]) -> Step:
        """One platform call, straight to the mock: an identity must come back."""
        answer_key = "openid" if channel == "wechat" else "alipay_system_oauth_token_response"

        async def step() -> None:
            request = await pool.take()
            if isinstance(request, str):
                call = http.get(request)
            else:
                call = http.post(self.child.base + "/alipay/gateway.do", data=request,
                                      headers=FORM)
            async with call as resp:
                status, body = resp.status, await resp.read()
            if status != 200 or answer_key not in json.loads(body):
                raise RuntimeError(f"{channel} mock: HTTP {status}: {body[:200]!r}")
        return step

    # -- channel logins through the gateway -----------------------------------------------

    async def login_forms(self, channel: str, count: int, fresh: bool) -> list[bytes]:
        return [login_form(channel, code) for code in await self.codes(channel, count, fresh)]


def login_form(channel: str, code: str) -> bytes:
    return urlencode({"grant_type": CHANNEL_GRANT, "client_id": MINIAPP, "channel": channel,
                      "code": code, "scope": SCOPE}).encode()


async def channel_login(http: aiohttp.ClientSession, server: ServerProcess,
                        form: bytes) -> dict[str, str]:
    """``POST /token`` with the channel grant; the tokens it answers with."""
    async with http.post(server.base + TOKEN_PATH, data=form, headers=FORM) as resp:
        status, body = resp.status, await resp.read()
    tokens = json.loads(body) if status == 200 else {}
    if not all(isinstance(tokens.get(k), str) for k in
               ("access_token", "id_token", "refresh_token")):
        raise RuntimeError(f"channel login: HTTP {status}: {body[:200]!r}")
    return dict(tokens)


def login_step(http: aiohttp.ClientSession, server: ServerProcess,
               pool: Pool[bytes]) -> Step:
    async def step() -> None:
        await channel_login(http, server, await pool.take())
    return step


# --- switching (无感切换) ------------------------------------------------------------------


async def switch(http: aiohttp.ClientSession, webview: aiohttp.ClientSession,
                 server: ServerProcess, *, alg: str, token: str, target: str) -> None:
    """One switching hop (``bench/miniprogram.py``'s docstring says what it holds)."""
    async with http.post(server.base + TICKET_PATH, data={"target": target},
                         headers={"Authorization": f"Bearer {token}"}) as resp:
        status, body = resp.status, await resp.read()
    if status != 200:
        raise RuntimeError(f"{TICKET_PATH}: HTTP {status}: {body[:200]!r}")
    url = json.loads(body)["transfer_url"]
    webview.cookie_jar.clear()  # a web-view with none of the gateway's cookies
    async with webview.get(yarl.URL(url, encoded=True), allow_redirects=False) as resp:
        if location(resp, 303) != target:
            raise RuntimeError(f"the transfer led to {resp.headers['Location']!r}")
    await hop(webview, server, alg)  # the RP's silent /authorize, its code redeemed
