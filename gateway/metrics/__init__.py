"""Prometheus metrics: what operators watch the gateway through.

``recorder`` defines every metric and the calls that record them (one object per app,
passed to the parts that record: the layer below the features, so that each can);
``routes`` times the gateway's own routes; ``endpoint`` serves ``/metrics`` to scrapers
only; ``tally`` keeps the series every request writes as plain numbers (one
process). The store is timed by ``gateway.store.measured``, and the proxy records its own
requests. The operators' console is ``gateway.ops``.
"""

from gateway.metrics.endpoint import MetricsEndpoint, metrics_token
from gateway.metrics.recorder import (
    CHECK_RESULTS,
    CIRCUIT_STATES,
    Metrics,
    PrometheusMetrics,
    open_metrics,
)
from gateway.metrics.routes import RouteMetrics

__all__ = [
    "CHECK_RESULTS",
    "CIRCUIT_STATES",
    "Metrics",
    "MetricsEndpoint",
    "PrometheusMetrics",
    "RouteMetrics",
    "metrics_token",
    "open_metrics",
]
