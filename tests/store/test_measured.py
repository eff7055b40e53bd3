"""The timed store (gateway/store/measured.py): every call passes through unchanged and is
timed under its operation; a store that does not answer counts as an error."""

from __future__ import annotations

import pytest

from gateway.errors import StoreError
from gateway.metrics.recorder import PrometheusMetrics
from gateway.store import MemoryStore, RedisStore
from gateway.store.measured import OPERATIONS, MeasuredStore
from tests.support.redis_server import unused_port


def count(metrics: PrometheusMetrics, name: str, operation: str) -> float:
    found = metrics.registry.get_sample_value(name, {"operation": operation})
    return found or 0.0


async def test_every_call_passes_through_and_is_timed() -> None:
    metrics = PrometheusMetrics()
    store = MeasuredStore(MemoryStore(), metrics)
    await store.upsert("session", "a", {"grant_id": "g", "n": 1}, 60, version="v1")
    assert await store.find("session", "a") == {"grant_id": "g", "n": 1}
    assert await store.find_text("session", "a") == '{"grant_id":"g","n":1}'
    versioned = await store.find_versioned("session", "a")
    assert versioned is not None
    assert versioned.version == "v1"
    assert await store.advance("session", "a", "v1", "v2", memo="m", reuse_for=5) == (
        {"grant_id": "g", "n": 1}, "advanced", "")
    assert await store.advance("session", "a", "v1", "v3") == (
        {"grant_id": "g", "n": 1}, "repeated", "m"), "memo and window passed through"
    assert await store.swap("lease", "b", {"n": 1}, 60, expected=None, version="node")
    assert await store.replace("session", "a", {"grant_id": "g", "n": 2}, 60)
    assert await store.find_by_grant("g") == [("session", "a", {"grant_id": "g", "n": 2})]
    assert await store.consume("session", "a") == ({"grant_id": "g", "n": 2}, True)
    assert (await store.incr("login_failures", "x", 60)).value == 1
    await store.destroy("login_failures", "x")
    assert await store.revoke_by_grant("g") == 1
    await store.forget("g", "session", "a")
    await store.close()
    for operation in OPERATIONS:
        calls = 2 if operation == "advance" else 1
        assert count(metrics, "roam_store_operation_duration_seconds_count", operation) == \
            calls, \
            operation
        assert count(metrics, "roam_store_errors_total", operation) == 0


async def test_a_store_that_does_not_answer_counts_as_an_error() -> None:
    metrics = PrometheusMetrics()
    store = MeasuredStore(RedisStore.from_url(f"redis://127.0.0.1:{unused_port()}/0"), metrics)
    try:
        with pytest.raises(StoreError):
            await store.find("session", "a")
        with pytest.raises(ValueError, match="ttl"):  # the caller's mistake: no outage
            await store.upsert("session", "a", {}, 0)
    finally:
        await store.close()
    assert count(metrics, "roam_store_errors_total", "find") == 1
    assert count(metrics, "roam_store_operation_duration_seconds_count", "find") == 1
    assert count(metrics, "roam_store_errors_total", "upsert") == 0
