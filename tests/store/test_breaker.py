"""The store's circuit breaker (gateway/store/breaker.py): opened by a timeout, calls
fail unsent while it is open, and it closes when the store answers."""

from __future__ import annotations

import pytest

from gateway.errors import StoreError
from gateway.metrics.recorder import PrometheusMetrics
from gateway.store.breaker import Breaker
from gateway.store.measured import MeasuredStore
from gateway.store.redis import RedisStore
from gateway.wiring import build_gateway
from tests.support.gateway import config_on_port
from tests.support.servers import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_timeout_opens_it_for_its_window_then_calls_go_through() -> None:
    clock = Clock()
    breaker = Breaker(2.0, clock=clock)
    breaker.check()  # closed: nothing raised
    breaker.timed_out()
    assert breaker.open
    with pytest.raises(StoreError, match="circuit open"):
        breaker.check()
    clock.now += 1.9
    with pytest.raises(StoreError):
        breaker.check()
    clock.now += 0.2
    breaker.check()  # the window passed: the next call is sent (a trial)
    breaker.timed_out()  # ...and timed out again: open again
    with pytest.raises(StoreError):
        breaker.check()
    breaker.answered()  # an answer closes it at once
    assert not breaker.open
    breaker.check()


def test_zero_never_opens(caplog: pytest.LogCaptureFixture) -> None:
    breaker = Breaker(0, clock=Clock())
    breaker.timed_out()
    breaker.check()
    assert not breaker.open
    assert "circuit" not in caplog.text


def test_opening_and_closing_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    breaker = Breaker(5.0, clock=Clock())
    for _ in range(3):
        breaker.timed_out()
    for _ in range(3):
        breaker.answered()
    messages = [r.getMessage() for r in caplog.records if r.name == "roam.store"]
    assert messages == ["store circuit opened: calls fail at once",
                        "store circuit closed: the store answers again"]


def test_each_transition_is_told_once_and_the_gateway_exports_it() -> None:
    told: list[bool] = []
    breaker = Breaker(5.0, clock=Clock(), on_change=told.append)
    for _ in range(3):
        breaker.timed_out()
    for _ in range(3):
        breaker.answered()
    breaker.timed_out()
    assert told == [True, False, True]
    metrics = PrometheusMetrics()
    breaker.on_change = metrics.store_circuit
    assert metrics.registry.get_sample_value("roam_store_circuit_open") == 0
    breaker.answered()
    breaker.timed_out()
    assert metrics.registry.get_sample_value("roam_store_circuit_open") == 1
    breaker.answered()
    assert metrics.registry.get_sample_value("roam_store_circuit_open") == 0


def test_the_gateway_s_own_redis_store_reports_its_breaker(redis_url: str,
                                                           redis_prefix: str) -> None:
    config = config_on_port(free_port(), backend="redis", redis_url=redis_url,
                            prefix=redis_prefix)
    metrics = PrometheusMetrics()
    gateway = build_gateway(config, metrics=metrics)
    store = gateway.store.inner if isinstance(gateway.store, MeasuredStore) else gateway.store
    assert isinstance(store, RedisStore)
    store.breaker.timed_out()
    assert metrics.registry.get_sample_value("roam_store_circuit_open") == 1
