"""Observations held a moment: recorded a batch at a time, after a timer, or at a scrape,
and never lost."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics.later import Later
from gateway.metrics.recorder import PrometheusMetrics


async def test_held_values_are_recorded_when_a_batch_is_full() -> None:
    recorded: list[float] = []
    later = Later(batch=3, within=60)
    later.add(recorded.append, 1.0)
    later.add(recorded.append, 2.0)
    assert recorded == []  # held
    later.add(recorded.append, 3.0)
    assert recorded == [1.0, 2.0, 3.0]


async def test_a_value_held_alone_is_recorded_within_the_interval() -> None:
    recorded: list[float] = []
    later = Later(batch=100, within=0.05)
    later.add(recorded.append, 1.0)
    assert recorded == []
    for _ in range(100):  # the event loop's timer, not a sleep of a fixed length
        await asyncio.sleep(0.01)
        if recorded:
            break
    assert recorded == [1.0]


def test_with_no_event_loop_a_value_is_recorded_at_once() -> None:
    recorded: list[float] = []
    Later(batch=100, within=60).add(recorded.append, 1.0)
    assert recorded == [1.0]


def _value(body: bytes, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                return float(sample.value)
    return None


async def test_a_scrape_shows_what_is_held() -> None:
    metrics = PrometheusMetrics()
    metrics.request("/token", "POST", 200, 0.002)
    metrics.store_timer("find")(0.0003)
    body, _ = metrics.exposition("text/plain")
    assert _value(body, "roam_http_requests_total", route="/token", status="200") == 1
    assert _value(body, "roam_store_operation_duration_seconds_count", operation="find") == 1


def test_a_timer_set_on_a_loop_since_gone_is_set_again() -> None:
    recorded: list[float] = []
    later = Later(batch=100, within=0.05)

    async def add_and_leave() -> None:
        later.add(recorded.append, 1.0)  # the loop ends before its timer fires

    async def add_and_wait() -> None:
        later.add(recorded.append, 2.0)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if recorded:
                break

    asyncio.run(add_and_leave())
    assert recorded == []
    asyncio.run(add_and_wait())
    assert recorded == [1.0, 2.0]
