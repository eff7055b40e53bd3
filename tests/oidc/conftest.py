from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Config
from gateway.store.memory import MemoryStore
from tests.support.gateway import config_on_port
from tests.support.receiver import Receiver
from tests.support.registration import registration_config
from tests.support.servers import free_port, serve


@pytest.fixture(scope="module")
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture(scope="module")
def gateway_url(store: MemoryStore) -> Iterator[str]:
    port = free_port()
    app = create_app(config_on_port(port), store=store)
    with serve(app, port) as url:
        yield url


@pytest.fixture
def browser(gateway_url: str) -> Iterator[httpx.Client]:
    """A cookie-keeping client that does not follow redirects, like a careful browser."""
    with httpx.Client(base_url=gateway_url, follow_redirects=False) as client:
        yield client


@pytest.fixture
def redis_gateway(redis_url: str, redis_prefix: str) -> Iterator[str]:
    """A gateway on the test Redis, under this test's key prefix."""
    port = free_port()
    config = config_on_port(port, backend="redis", redis_url=redis_url, prefix=redis_prefix)
    with serve(create_app(config), port) as url:
        yield url


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    """An RP's back-channel logout endpoint (``/<rp>``) and its base URL."""
    rp = Receiver()
    with serve(rp.app()) as url:
        yield rp, url


@pytest.fixture
def registering_gateway(redis_url: str, redis_prefix: str) -> Iterator[tuple[str, Config]]:
    """A gateway on the test Redis where systems register themselves (a short secret
    overlap: tests/support/registration.py)."""
    port = free_port()
    config = registration_config(port, redis_url, redis_prefix)
    with serve(create_app(config), port) as url:
        yield url, config
