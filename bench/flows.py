"""What a browser and an RP do at the gateway, for the benches to set up and to load.

A password login through the pages, a silent ``/authorize`` for a code, the code redeemed
at ``/token`` with PKCE: through the gateway's own HTTP flow, never behind its back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import aiohttp
import yarl

from bench.processes import ServerProcess

USERNAME = "13800000001"  # config/directory.toml's demo citizen 张三
PASSWORD = "Roam@2026"
TOKEN_PATH = "/token"


def jwt_header(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    padded = segment + "=" * (-len(segment) % 4)
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return header


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_path(client_id: str, redirect_uri: str, challenge: str) -> str:
    """``/authorize?…`` for a code with PKCE S256, the bench clients' scopes."""
    query = {
        "client_id": client_id, "response_type": "code", "scope": "openid profile",
        "redirect_uri": redirect_uri, "state": secrets.token_urlsafe(8),
        "code_challenge": challenge, "code_challenge_method": "S256",
    }
    return f"/authorize?{urlencode(query)}"


def authorize_url(server: ServerProcess, alg: str, challenge: str) -> str:
    return server.base + authorize_path(server.clients[alg], server.redirect_uri, challenge)


def login_form(html: str) -> dict[str, str]:
    """The login page's form, filled in for the demo citizen."""
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))
    return {"csrf_token": fields["csrf_token"], "r": fields["r"],
            "username": USERNAME, "password": PASSWORD}


def location(resp: aiohttp.ClientResponse, expected: int) -> str:
    if resp.status != expected or "Location" not in resp.headers:
        raise RuntimeError(f"{resp.method} {resp.url.path}: expected a {expected} redirect, "
                           f"got {resp.status}")
    return resp.headers["Location"]


def code_from(server: ServerProcess, url: str) -> str:
    return code_in(server.redirect_uri, url)


def code_in(redirect_uri: str, url: str) -> str:
    """The code of a redirect to ``redirect_uri``; ``RuntimeError`` for anything else."""
    if not url.startswith(redirect_uri + "?"):
        raise RuntimeError(f"redirected to {url!r}, not to the client")
    params = parse_qs(urlsplit(url).query)
    if "code" not in params:
        raise RuntimeError(f"no code in the redirect: {params.get('error')}")
    return params["code"][0]


async def login(browser: aiohttp.ClientSession, server: ServerProcess, alg: str) -> str:
    """Log the demo citizen in through the pages; returns the first refresh token."""
    base = server.base
    verifier, challenge = pkce()
    url = authorize_url(server, alg, challenge)
    async with browser.get(url, allow_redirects=False) as resp:
        login_url = urljoin(base, location(resp, 303))
    async with browser.get(login_url) as resp:
        html = await resp.text()
        if resp.status != 200:
            raise RuntimeError(f"GET /login: {resp.status}")
    async with browser.post(base + "/login", data=login_form(html),
                            allow_redirects=False) as resp:
        resume_url = urljoin(base, location(resp, 303))
    async with browser.get(resume_url, allow_redirects=False) as resp:
        code = code_from(server, location(resp, 302))
    return await redeem(browser, server, alg, code, verifier)


async def redeem(browser: aiohttp.ClientSession, server: ServerProcess, alg: str, code: str,
                 verifier: str) -> str:
    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": server.redirect_uri, "code_verifier": verifier}
    headers = {"Authorization": server.basic_auth(alg)}
    async with browser.post(server.base + TOKEN_PATH, data=form, headers=headers) as resp:
        body = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"code redemption failed: {resp.status} {body}")
    if jwt_header(body["id_token"])["alg"] != alg:
        raise RuntimeError(f"the {server.clients[alg]} ID token is not signed with {alg}")
    refresh: str = body["refresh_token"]
    return refresh


async def own_grants(server: ServerProcess, alg: str, users: int) -> list[str]:
    """One refresh token per user, each of its own session and so its own grant (one grant
    per client and session: authorizing again in one session leaves the earlier refresh
    token stale), through the login pages."""
    tokens: list[str] = []
    for _ in range(users):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            tokens.append(await login(browser, server, alg))
    return tokens


async def seed(browser: aiohttp.ClientSession, server: ServerProcess, alg: str,
               users: int) -> list[str]:
    """``users`` authorizations of one client in the browser's one session, via the HTTP
    flow: one grant, whose refresh token is the last one's (the earlier ones are stale)."""
    tokens: list[str] = []
    if not browser.cookie_jar.filter_cookies(yarl.URL(server.base)).get("roam_session"):
        tokens.append(await login(browser, server, alg))
    while len(tokens) < users:
        verifier, challenge = pkce()  # the session answers silently from here on
        url = authorize_url(server, alg, challenge)
        async with browser.get(url, allow_redirects=False) as resp:
            code = code_from(server, location(resp, 302))
        tokens.append(await redeem(browser, server, alg, code, verifier))
    return tokens

