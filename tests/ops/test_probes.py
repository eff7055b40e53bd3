"""``/healthz`` and ``/readyz`` on a real gateway: ready, then a Redis that dies, an audit
database that is not there, a key ring without a client's algorithm."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx
from pydantic import SecretStr

from gateway.app import create_app
from gateway.config import Config
from gateway.keys import KeyRing
from gateway.ops.probes import Probes
from gateway.store import MemoryStore
from gateway.wiring import build_gateway
from tests.support.gateway import config_on_port
from tests.support.redis_server import started_redis_server, unused_port
from tests.support.servers import free_port, serve


def probe(url: str, path: str, *, timeout: float = 10) -> tuple[int, dict[str, Any]]:
    answer = httpx.get(f"{url}{path}", timeout=timeout)
    assert answer.headers["cache-control"] == "no-store"
    return answer.status_code, answer.json()


def test_a_gateway_whose_parts_work_is_ready() -> None:
    port = free_port()
    with serve(create_app(config_on_port(port)), port) as url:
        assert probe(url, "/healthz") == (200, {"status": "ok"})
        assert probe(url, "/readyz") == (200, {"status": "ready", "checks": {
            "store": "ok", "keys": "ok", "config": "ok", "audit": "ok"}})


def test_not_ready_while_redis_is_down_and_ready_again_after() -> None:
    """A redis-server of the test's own, killed under the running gateway."""
    with started_redis_server() as redis:
        port = free_port()
        config = config_on_port(port, backend="redis", redis_url=redis.url, prefix="roamtest:")
        with serve(create_app(config), port) as url:
            assert probe(url, "/readyz")[0] == 200
            redis.stop()
            status, body = probe(url, "/readyz")
            assert status == 503
            assert body["failing"] == ["store"]
            assert body["checks"]["store"] == "unreachable"
            assert body["checks"]["audit"] == "ok"
            assert "redis" not in str(body)  # no address, no URL
            assert probe(url, "/healthz") == (200, {"status": "ok"})  # alive all the same


def test_a_frozen_redis_makes_it_not_ready_within_a_second_and_ready_after() -> None:
    """SIGSTOP: the connection stays open and nothing answers (a hung server, a network
    that drops packets), the case a refused connection does not show."""
    with started_redis_server() as redis:
        port = free_port()
        config = config_on_port(port, backend="redis", redis_url=redis.url, prefix="roamtest:")
        with serve(create_app(config), port) as url:
            assert probe(url, "/readyz")[0] == 200
            os.kill(redis.process.pid, signal.SIGSTOP)
            try:  # asked as a load balancer asks, giving up after a second
                status, body = probe(url, "/readyz", timeout=1.0)
            finally:
                os.kill(redis.process.pid, signal.SIGCONT)
            assert (status, body["failing"], body["checks"]["store"]) == (
                503, ["store"], "timed out")
            deadline = time.monotonic() + 10
            while probe(url, "/readyz")[0] != 200:  # recovers by itself
                assert time.monotonic() < deadline, "still not ready after Redis resumed"
                time.sleep(0.1)


def with_audit_database(config: Config, dsn: str) -> Config:
    audit = config.settings.audit.model_copy(update={
        "sink": "postgresql", "dsn": SecretStr(dsn), "connect_timeout": 1.0})
    return config.revised(settings=config.settings.model_copy(update={"audit": audit}))


def test_not_ready_when_the_audit_database_is_unreachable() -> None:
    port = free_port()
    dsn = f"postgresql://roam:s3cret-pw@127.0.0.1:{unused_port()}/roam"
    config = with_audit_database(config_on_port(port), dsn)
    with serve(create_app(config, store=MemoryStore()), port) as url:
        status, body = probe(url, "/readyz")
        assert status == 503
        assert body["failing"] == ["audit"]
        assert body["checks"]["audit"] == "sink not writable"
        assert "s3cret-pw" not in str(body)
        assert "127.0.0.1" not in str(body)
        assert probe(url, "/healthz")[0] == 200


def test_ready_on_a_real_audit_database(postgres_dsn: str, audit_schema: str) -> None:
    port = free_port()
    config = with_audit_database(config_on_port(port), postgres_dsn)
    config = config.revised(settings=config.settings.model_copy(update={
        "audit": config.settings.audit.model_copy(update={"schema_name": audit_schema})}))
    with serve(create_app(config, store=MemoryStore()), port) as url:
        assert probe(url, "/readyz")[0] == 200


async def test_keys_missing_for_a_client_are_named() -> None:
    config = config_on_port(free_port())
    gateway = build_gateway(config, store=MemoryStore())
    algs = {c.id_token_signed_response_alg for c in config.clients}
    assert algs == {"RS256", "ES256"}  # the shipped clients use both
    probes = Probes(config=config, store=gateway.store, keys=KeyRing.ephemeral(["RS256"]),
                    audit=gateway.audit)
    checks = await probes.run()
    assert checks["keys"] == "no signing key for ES256"
