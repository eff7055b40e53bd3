"""Each proxied system's traffic as the operators' console shows it, read back from the
metrics: requests, 5xx answers, and latency quantiles estimated from the histogram's
buckets the way Prometheus's ``histogram_quantile`` does (linear within a bucket).

Counted since each gateway process started (summed over the workers in multiprocess
mode): the console's figure for "how is it going", Prometheus's for windows and alerts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric

__all__ = ["Traffic", "quantile", "traffic_by_system"]

REQUESTS = "roam_proxy_requests"
DURATION = "roam_proxy_request_duration_seconds"


@dataclass(frozen=True)
class Traffic:
    requests: int
    errors: int  # answers with a 5xx status (the gateway's or the system's)
    p50: float | None  # seconds
    p99: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


def quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of cumulative ``(upper bound, count)`` buckets; None if empty.
    Past the last finite bound, that bound (as Prometheus answers)."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower
            width = count - below
            return lower + (bound - lower) * ((rank - below) / width if width else 1.0)
        lower, below = bound, count
    return lower


def traffic_by_system(families: Iterable[Metric]) -> dict[str, Traffic]:
    """system id → its :class:`Traffic`, from collected metric families."""
    requests: dict[str, int] = defaultdict(int)
    errors: dict[str, int] = defaultdict(int)
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for family in families:
        for sample in family.samples:
            system = sample.labels.get("system", "")
            if family.name == REQUESTS and sample.name == f"{REQUESTS}_total":
                requests[system] += int(sample.value)
                if sample.labels.get("status", "").startswith("5"):
                    errors[system] += int(sample.value)
            elif family.name == DURATION and sample.name == f"{DURATION}_bucket":
                buckets[system][float(sample.labels["le"])] += sample.value
    return {system: Traffic(count, errors[system],
                            quantile(0.5, buckets[system].items()),
                            quantile(0.99, buckets[system].items()))
            for system, count in requests.items()}
