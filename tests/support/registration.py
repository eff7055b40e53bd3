"""Registering clients in tests: a gateway config with registration's test settings,
an operator's invitation straight into the store, and the RFC 7591/7592 calls."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gateway.config import Config
from gateway.oidc.invites import Invites
from gateway.wiring.parts import configured_store
from tests.support.gateway import config_on_port

CALLBACK = "http://127.0.0.1:8011/callback"
OVERLAP = 2  # seconds a rotated secret keeps working in these tests


def registration_config(port: int, redis_url: str, prefix: str, **section: Any) -> Config:
    config = config_on_port(port, backend="redis", redis_url=redis_url, prefix=prefix)
    registration = config.settings.registration.model_copy(
        update={"secret_overlap": OVERLAP, **section})
    return config.revised(settings=config.settings.model_copy(
        update={"registration": registration}))


def invite(config: Config, *, uses: int = 1, region: str = "430100") -> str:
    async def issue() -> str:
        store = configured_store(config)
        try:
            token, _ = await Invites(store).issue(region, expires_in=600, uses=uses, by="test")
            return token
        finally:
            await store.close()

    return asyncio.run(issue())


def metadata(**changes: Any) -> dict[str, Any]:
    return {"client_name": "湘潭市政务服务网", "redirect_uris": [CALLBACK],
            "scope": "openid profile", "token_endpoint_auth_method": "client_secret_basic",
            "contacts": ["ops@xiangtan.example.cn"], **changes}


def register(url: str, token: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/register", json=body,
                      headers={"Authorization": f"Bearer {token}"})


def managed(method: str, answer: dict[str, Any], *, headers: dict[str, str] | None = None,
            **kwargs: Any) -> httpx.Response:
    """An RFC 7592 call with the client's current registration access token."""
    return httpx.request(method, answer["registration_client_uri"], headers={
        "Authorization": f"Bearer {answer['registration_access_token']}", **(headers or {})},
        **kwargs)
