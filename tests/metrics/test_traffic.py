"""gateway/metrics/traffic.py: the console's per-system figures, read back from metrics
recorded the way the proxy records them."""

from __future__ import annotations

import pytest

from gateway.config import ServiceItem, SystemConfig, Systems
from gateway.metrics.recorder import Metrics, PrometheusMetrics
from gateway.metrics.traffic import quantile

SYSTEMS = Systems([SystemConfig(id="yuelu", name="岳麓", region="430104", level="county",
                                instances=("http://127.0.0.1:9",), connector="signed-header",
                                items=("A-1",))], [ServiceItem(code="A-1", name="甲")])


def test_quantiles_interpolate_within_buckets_as_prometheus_does() -> None:
    buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.7, buckets) == pytest.approx(0.3)
    assert quantile(0.99, buckets) == pytest.approx(0.95)
    assert quantile(0.5, [(float("inf"), 0.0)]) is None
    assert quantile(0.99, [(0.1, 1.0), (float("inf"), 10.0)]) == pytest.approx(0.1)


def test_requests_errors_and_latency_per_system() -> None:
    metrics = PrometheusMetrics(systems=SYSTEMS)
    for _ in range(98):
        metrics.proxied("yuelu", 200, 0.004)
    metrics.proxied("yuelu", 502, 0.8)
    metrics.proxied("yuelu", 503, 0.8)
    traffic = metrics.traffic()["yuelu"]
    assert (traffic.requests, traffic.errors) == (100, 2)
    assert traffic.error_rate == pytest.approx(0.02)
    assert traffic.p50 is not None
    assert traffic.p50 <= 0.005
    assert traffic.p99 is not None
    assert traffic.p99 > 0.5
    assert Metrics().traffic() == {}  # metrics off: nothing to show
