"""A gateway on real Redis whose verifier is the HTTP adapter, talking to the real mock
verification service (demo/verification.py) over HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from demo.verification import verification_app
from gateway.app import gateway_app
from gateway.binding.bindings import Bindings
from gateway.binding.identity import ChannelIdentity
from gateway.channels.login import CHANNEL_SUBJECT
from gateway.identity import Identity, PersonKind
from gateway.ids import new_id
from gateway.oidc.grant import Grant
from gateway.store.base import Kind
from gateway.store.redis import RedisStore
from gateway.wiring import Gateway, build_gateway
from tests.support.gateway import config_on_port
from tests.support.servers import free_port, serve

CREDENTIAL = "verification-test-credential-7c1d"
# From config/directory.toml (fictional people).
ZHANG = ("张三", "430102199001010016")  # c-0001
LI = ("李四", "430104198506150039")  # c-0002
REGISTER = [ZHANG, LI, ("赵六", "430105198001010010")]  # 赵六: known to the service only


@pytest.fixture(scope="module")
def verification_url() -> Iterator[str]:
    with serve(verification_app(REGISTER, credential=CREDENTIAL)) as url:
        yield url


@dataclass
class Running:
    url: str
    gateway: Gateway
    store: RedisStore

    async def channel_token(self, identity: ChannelIdentity, *, jkt: str | None = None,
                            client_id: str = "hunan-miniapp") -> str:
        """What the channel login does past the platform (tests/channels drive it whole):
        resolve the identity, record a grant naming the channel identity, and mint an
        access token for the mini-program's client — the citizen's once bound."""
        subject, level = await self.bindings().resolve(identity)
        grant = Grant(grant_id=new_id(16), client_id=client_id,
                      identity=Identity(subject, PersonKind.NATURAL, "L1", (identity.channel,),
                                        int(time.time()), "",
                                        {CHANNEL_SUBJECT: identity.subject,
                                         "verified_level": level}),
                      scope="openid", expires_at=int(time.time()) + 3600, offline=True)
        await self.store.upsert(Kind.GRANT, grant.grant_id, grant.to_dict(), 3600)
        client = self.gateway.clients.get(client_id)
        assert client is not None
        return self.gateway.minter.access_token(grant, client, "openid", jkt=jkt)

    def bindings(self) -> Bindings:
        return Bindings(self.store, ttl=86400, citizen_of=self.gateway.bindings.citizen_of)


@pytest.fixture
async def running(redis_url: str, redis_prefix: str, verification_url: str,
                  tmp_path: Path) -> AsyncIterator[Running]:
    port = free_port()
    config = config_on_port(port, backend="redis", redis_url=redis_url, prefix=redis_prefix)
    (tmp_path / "credential").write_text(CREDENTIAL + "\n")
    binding = config.settings.binding.model_copy(update={
        "verifier": "http", "base_url": verification_url,
        "credential_file": str(tmp_path / "credential"), "max_attempts": 4,
        "max_id_attempts": 3})
    config = config.revised(settings=config.settings.model_copy(update={"binding": binding}))
    gateway = build_gateway(config)
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    try:
        with serve(gateway_app(gateway), port) as url:
            yield Running(url, gateway, store)
    finally:
        await store.close()


async def scan(verification_url: str, verification_id: str, outcome: str) -> None:
    """The person's face scan in the mini-program: client → verification service."""
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{verification_url}/v1/face/sessions/{verification_id}/scan",
                                 json={"outcome": outcome})
    assert answer.status_code == 200, answer.text
