"""What operators watch the gateway through.

``metrics`` defines every Prometheus metric and the calls that record them (one object
per app, passed to the parts that record); ``route_metrics`` times the gateway's own
routes; ``metrics_endpoint`` serves ``/metrics`` to scrapers only. The store is timed by
``gateway.store.measured`` and the proxy records its own requests.
"""

from gateway.ops.metrics import (
    CHECK_RESULTS,
    CIRCUIT_STATES,
    Metrics,
    PrometheusMetrics,
    open_metrics,
)
from gateway.ops.metrics_endpoint import MetricsEndpoint, metrics_token
from gateway.ops.route_metrics import RouteMetrics

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
