"""What the gateway tells Prometheus: every metric it exports, and the calls that record them.

Each app gets a :class:`PrometheusMetrics` of its own (a registry per app: tests build
several apps in one process), made by :func:`open_metrics` from ``[metrics]`` and handed
to the parts that record — never a module global. With ``[metrics] enabled = false`` the
parts get :class:`Metrics`, whose calls do nothing, and the wiring adds no middleware and
no store wrapper, so a gateway without metrics pays nothing for them.

Labels carry only values the gateway chose or an operator registered: route templates,
system and client ids, configured instance URLs (without user info), status codes, and
fixed words. Never a subject, a token, a raw path or anything else a client sent.

Several worker processes: prometheus-client's multiprocess mode. When the environment the
process starts with has ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory shared by the
workers of one host, wiped before they start), every value is kept in a file there and
``/metrics`` in any worker answers the sum over all of them (docs/operations.md).

The series written on every request (requests to the gateway's routes and the proxy's,
store calls) are tallies in one process (``gateway.metrics.tally``: an add, no lock), and
are recorded through children bound once per label values, with no label look-up
(``bench/ops_cost.py``, ``bench/proxy.py --ops on,off``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import prometheus_client.values
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from gateway.config import MetricsSection, Systems
from gateway.errors import ConfigError
from gateway.metrics.tally import CounterTally, HistogramTally, Tallies, counted_and_timed
from gateway.metrics.traffic import Traffic, traffic_by_system

__all__ = [
    "CHECK_RESULTS",
    "CIRCUIT_STATES",
    "GRANT_TYPES",
    "MULTIPROC_ENV",
    "Metrics",
    "PrometheusMetrics",
    "multiprocess_problems",
    "open_metrics",
    "upstream_label",
]

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

CIRCUIT_STATES = ("closed", "open", "half_open")
"""An instance's circuit: passing traffic, ejected, or letting a trial request through."""
CHECK_RESULTS = ("success", "failure", "timeout")
"""An active health check's outcome: a healthy answer, a bad one, none in time."""
GRANT_TYPES: Mapping[str, str] = {
    "authorization_code": "authorization_code",
    "refresh_token": "refresh_token",
    "client_credentials": "client_credentials",
    "urn:ietf:params:oauth:grant-type:token-exchange": "token_exchange",
    "urn:roam:params:oauth:grant-type:channel-code": "channel_code",
}
"""``grant_type`` values as the ``grant_type`` label names them; anything else: ``other``."""
LOGOUT_REASONS: Mapping[str, str] = {
    "rp-initiated": "rp_initiated",
    "my-logins": "my_logins",
    "another person logged in": "replaced",
    "operator": "operator",
}
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
DELIVERY_OUTCOMES = ("delivered", "retry", "given_up", "refused")

# Seconds. Requests: a proxied page takes a few ms, a login tens; store calls: ~0.1 ms.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0)
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 1.0, 5.0)
CHECK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def upstream_label(instance: str) -> str:
    """An instance URL as a label: without any user info it may carry."""
    parts = urlsplit(instance)
    if "@" not in parts.netloc:
        return instance
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


class _Children:
    """A labelled metric's children, each made once (``labels()`` checks and locks on
    every call; a dict look-up does not). The label values are bounded, so is this."""

    __slots__ = ("children", "metric")

    def __init__(self, metric: Counter | CounterTally) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], Any] = {}  # Counter, or a tally's child

    def inc(self, *values: str) -> None:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.metric.labels(*values)
        child.inc()


class Metrics:
    """The recording calls, doing nothing: a gateway with metrics off.

    :class:`PrometheusMetrics` records them. The health code calls
    :meth:`instance_state` and :meth:`health_check`; the rest have one caller each."""

    enabled = False

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One request to the gateway's own routes (``route``: the template)."""

    def proxied(self, system_id: str, status: int, seconds: float) -> None:
        """One request the proxy answered for ``system_id`` (an unknown one: ``unknown``)."""

    def instance_state(self, system: str, instance: str, healthy: bool, circuit: str) -> None:
        """The health code's current view of one instance (``circuit``: CIRCUIT_STATES)."""

    def health_check(self, system: str, instance: str, result: str, seconds: float) -> None:
        """One active health check (``result``: CHECK_RESULTS) and how long it took."""

    def login(self, source: str, channel: str, level: str) -> None:
        """A person logged in: through ``source``, on ``channel``, at ``level`` (acr)."""

    def login_failure(self, source: str, channel: str, reason: str) -> None:
        """A login refused: ``password``, ``locked`` or ``throttled``."""

    def token_issued(self, grant_type: str) -> None:
        """``/token`` answered 200 for this ``grant_type``."""

    def token_error(self, grant_type: str, error: str) -> None:
        """``/token`` answered an RFC 6749 error."""

    def silent_hop(self, client_id: str) -> None:
        """``/authorize`` answered from an existing session with a code, no page shown."""

    def logout(self, reason: str) -> None:
        """A session ended everywhere (``SessionLogout.end``'s reason)."""

    def backchannel(self, client_id: str, outcome: str) -> None:
        """A back-channel logout delivery: DELIVERY_OUTCOMES."""

    def store_timer(self, operation: str) -> Callable[[float], None]:
        return _ignore_seconds

    def store_failure(self, operation: str) -> Callable[[], None]:
        return _ignore

    def store_circuit(self, open_: bool) -> None:
        """The store's circuit breaker opened (True) or closed (False)."""

    def audit(self, *, written: int, dropped: int, failed: int, queued: int) -> None:
        """The audit trail's writer since its last report: events ``written``, events
        ``dropped`` (queue full or refused by the sink), batches ``failed`` (kept for
        another try), and the events ``queued`` now."""

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """``/metrics``' body and content type for this ``Accept`` header."""
        raise LookupError("metrics are off")

    def traffic(self) -> dict[str, Traffic]:
        """Each proxied system's requests, errors and latency so far (the console's)."""
        return {}


def _ignore_seconds(seconds: float) -> None:
    return None


def _counted_and_timed(counter: Any, histogram: Any) -> Callable[[float], None]:
    """One request: ``counter`` + 1, its ``seconds`` into ``histogram``."""
    fused = counted_and_timed(counter, histogram)  # tallies: in one call
    if fused is not None:
        return fused

    def record(seconds: float) -> None:
        counter.inc()
        histogram.observe(seconds)

    return record


def _ignore() -> None:
    return None


def _hot_series(tallies: Tallies | None, registry: CollectorRegistry) -> tuple[
        Callable[[str, str, tuple[str, ...]], Counter | CounterTally],
        Callable[[str, str, tuple[str, ...], tuple[float, ...]], Histogram | HistogramTally]]:
    """How the series written on every request are made: as ``tallies`` when given,
    else as prometheus-client's own metrics on ``registry``."""
    def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter | CounterTally:
        if tallies is not None:
            return tallies.counter(name, doc, labels)
        return Counter(name, doc, labels, registry=registry)

    def histogram(name: str, doc: str, labels: tuple[str, ...],
                  buckets: tuple[float, ...]) -> Histogram | HistogramTally:
        if tallies is not None:
            return tallies.histogram(name, doc, labels, buckets)
        return Histogram(name, doc, labels, buckets=buckets, registry=registry)

    return counter, histogram


class PrometheusMetrics(Metrics):
    """Every metric on ``registry`` (a new one by default); values in ``multiprocess_dir``
    files when set (prometheus-client's multiprocess mode, which the process must have
    started in: see :func:`open_metrics`)."""

    enabled = True

    def __init__(self, *, systems: Systems | None = None,
                 registry: CollectorRegistry | None = None,
                 multiprocess_dir: str | None = None, version: str = "") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.multiprocess_dir = multiprocess_dir
        self._regions = {s.id: s.region for s in systems} if systems is not None else {}
        on = self.registry
        live: Literal["mostrecent"] = "mostrecent"  # multiprocess: the last value set
        # written on every request: plain numbers in one process (gateway.metrics.tally),
        # prometheus-client's file-backed values with several
        tallies = Tallies() if multiprocess_dir is None else None
        counter, histogram = _hot_series(tallies, on)
        self.http_requests = counter(
            "roam_http_requests_total", "Requests to the gateway's own routes.",
            ("route", "method", "status"))
        self.http_duration = histogram(
            "roam_http_request_duration_seconds",
            "Time to answer a request to the gateway's own routes.",
            ("route",), REQUEST_BUCKETS)
        self.proxy_requests = counter(
            "roam_proxy_requests_total", "Requests the proxy answered, by system.",
            ("system", "region", "status"))
        self.proxy_duration = histogram(
            "roam_proxy_request_duration_seconds",
            "Time to answer a proxied request, the whole body sent.",
            ("system", "region"), REQUEST_BUCKETS)
        self.instance_healthy = Gauge(
            "roam_instance_healthy", "1 if the instance takes traffic, else 0.",
            ("system", "upstream"), registry=on, multiprocess_mode=live)
        self.instance_circuit = Gauge(
            "roam_instance_circuit_state", "1 for the instance's current circuit state.",
            ("system", "upstream", "state"), registry=on, multiprocess_mode=live)
        self.health_checks = Counter(
            "roam_health_checks_total", "Active health checks, by result.",
            ("system", "upstream", "result"), registry=on)
        self.health_check_duration = Histogram(
            "roam_health_check_duration_seconds", "Time an active health check took.",
            ("system", "upstream"), buckets=CHECK_BUCKETS, registry=on)
        self.logins = Counter(
            "roam_logins_total", "Successful logins.", ("source", "channel", "level"),
            registry=on)
        self.login_failures = Counter(
            "roam_login_failures_total", "Refused logins.", ("source", "channel", "reason"),
            registry=on)
        self.tokens_issued = counter(  # one a hop, as the two below
            "roam_tokens_issued_total", "Token responses (200) from /token.", ("grant_type",))
        self.token_errors = Counter(
            "roam_token_errors_total", "Error responses from /token.",
            ("grant_type", "error"), registry=on)
        self.silent_hops = counter(
            "roam_sso_silent_hops_total",
            "/authorize answered from an existing session without a page.", ("client",))
        self.logouts = Counter(
            "roam_logouts_total", "Sessions ended everywhere.", ("reason",), registry=on)
        self.backchannel_deliveries = Counter(
            "roam_backchannel_deliveries_total",
            "Back-channel logout deliveries: delivered, retry scheduled, given up, refused.",
            ("client", "outcome"), registry=on)
        self.store_duration = histogram(
            "roam_store_operation_duration_seconds", "Time a store call took.",
            ("operation",), STORE_BUCKETS)
        self.store_errors = Counter(
            "roam_store_errors_total", "Store calls that failed (the store did not answer).",
            ("operation",), registry=on)
        self.store_circuit_open = Gauge(
            "roam_store_circuit_open",
            "1 while the store's circuit breaker is open: a call timed out, none answered since.",
            registry=on, multiprocess_mode="livemax")
        self.audit_events = Counter(
            "roam_audit_events_total",
            "Audit events: written to the trail, or dropped (queue full, refused by the sink).",
            ("result",), registry=on)
        self.audit_write_failures = Counter(
            "roam_audit_write_failures_total",
            "Audit batches the sink did not take (kept queued for another try).", registry=on)
        self.audit_queue = Gauge(
            "roam_audit_queue_events", "Audit events waiting to be written.", registry=on,
            multiprocess_mode="livesum")
        self._audit_written = self.audit_events.labels("written")
        self._audit_dropped = self.audit_events.labels("dropped")
        Gauge("roam_build_info", "The gateway's version; always 1.", ("version",),
              registry=on, multiprocess_mode="max").labels(version or "unknown").set(1)
        if multiprocess_dir is None:  # per-process facts; a multiprocess scrape has none
            ProcessCollector(registry=on)
            PlatformCollector(registry=on)
        self._logins, self._login_failures = _Children(self.logins), _Children(
            self.login_failures)
        self._issued, self._token_errors = _Children(self.tokens_issued), _Children(
            self.token_errors)
        self._hops, self._logouts = _Children(self.silent_hops), _Children(self.logouts)
        self._deliveries = _Children(self.backchannel_deliveries)
        self._requests: dict[tuple[str, str, int], Callable[[float], None]] = {}
        self._proxied: dict[tuple[str, int], Callable[[float], None]] = {}
        if tallies is not None:
            on.register(tallies)

    # -- traffic (bound children: no label look-up per request) ----------------------------

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        record = self._requests.get(key)
        if record is None:
            shown = method if method in METHODS else "other"
            record = self._requests[key] = _counted_and_timed(
                self.http_requests.labels(route, shown, str(status)),
                self.http_duration.labels(route))
        record(seconds)

    def proxied(self, system_id: str, status: int, seconds: float) -> None:
        key = (system_id, status)
        record = self._proxied.get(key)
        if record is None:
            region = self._regions.get(system_id)
            if region is None:  # a name a client typed, not a system
                system_id, region = "unknown", ""
            record = self._proxied[key] = _counted_and_timed(
                self.proxy_requests.labels(system_id, region, str(status)),
                self.proxy_duration.labels(system_id, region))
        record(seconds)

    # -- instances ---------------------------------------------------------------------------

    def instance_state(self, system: str, instance: str, healthy: bool, circuit: str) -> None:
        if circuit not in CIRCUIT_STATES:
            raise ValueError(f"circuit must be one of {CIRCUIT_STATES}, got {circuit!r}")
        upstream = upstream_label(instance)
        self.instance_healthy.labels(system, upstream).set(1 if healthy else 0)
        for state in CIRCUIT_STATES:
            self.instance_circuit.labels(system, upstream, state).set(
                1 if state == circuit else 0)

    def health_check(self, system: str, instance: str, result: str, seconds: float) -> None:
        if result not in CHECK_RESULTS:
            raise ValueError(f"result must be one of {CHECK_RESULTS}, got {result!r}")
        upstream = upstream_label(instance)
        self.health_checks.labels(system, upstream, result).inc()
        self.health_check_duration.labels(system, upstream).observe(seconds)

    # -- people and tokens -------------------------------------------------------------------

    def login(self, source: str, channel: str, level: str) -> None:
        self._logins.inc(source, channel, level)

    def login_failure(self, source: str, channel: str, reason: str) -> None:
        self._login_failures.inc(source, channel, reason)

    def token_issued(self, grant_type: str) -> None:
        self._issued.inc(GRANT_TYPES.get(grant_type, "other"))

    def token_error(self, grant_type: str, error: str) -> None:
        known = error if error.isidentifier() and error.islower() and len(error) <= 40 \
            else "other"
        self._token_errors.inc(GRANT_TYPES.get(grant_type, "other"), known)

    def silent_hop(self, client_id: str) -> None:
        self._hops.inc(client_id)

    def logout(self, reason: str) -> None:
        self._logouts.inc(LOGOUT_REASONS.get(reason, "other"))

    def backchannel(self, client_id: str, outcome: str) -> None:
        if outcome not in DELIVERY_OUTCOMES:
            raise ValueError(f"outcome must be one of {DELIVERY_OUTCOMES}, got {outcome!r}")
        self._deliveries.inc(client_id, outcome)

    # -- the store (gateway.store.measured) ----------------------------------------------------

    def store_timer(self, operation: str) -> Callable[[float], None]:
        return self.store_duration.labels(operation).observe

    def store_failure(self, operation: str) -> Callable[[], None]:
        counter = self.store_errors.labels(operation)
        counter.inc(0)  # shown from the start: a rate over a missing series is no rate

        def failed() -> None:
            counter.inc()

        return failed

    def store_circuit(self, open_: bool) -> None:
        self.store_circuit_open.set(1 if open_ else 0)

    # -- the audit trail (gateway.audit.trail) ------------------------------------------------

    def audit(self, *, written: int, dropped: int, failed: int, queued: int) -> None:
        self._audit_written.inc(written)
        self._audit_dropped.inc(dropped)
        self.audit_write_failures.inc(failed)
        self.audit_queue.set(queued)

    # -- /metrics ------------------------------------------------------------------------------

    def exposition(self, accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        return encoder(self._readable()), content_type

    def traffic(self) -> dict[str, Traffic]:
        return traffic_by_system(self._readable().collect())

    def _readable(self) -> CollectorRegistry:
        """This registry, or in multiprocess mode every worker's values summed."""
        if self.multiprocess_dir is None:
            return self.registry
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return merged


def multiprocess_problems(env: Mapping[str, str]) -> list[str]:
    """What is wrong with ``PROMETHEUS_MULTIPROC_DIR`` in ``env``, if it is set."""
    path = env.get(MULTIPROC_ENV)
    if path is None:
        return []
    if not path or not os.path.isdir(path):
        return [f"environment: {MULTIPROC_ENV}: {path!r} is not a directory (metrics of "
                "several worker processes are kept there)"]
    if not os.access(path, os.W_OK | os.X_OK):
        return [f"environment: {MULTIPROC_ENV}: {path!r} is not writable"]
    return []


def open_metrics(section: MetricsSection, systems: Systems, *, version: str = "",
                 env: Mapping[str, str] | None = None) -> Metrics:
    """The metrics ``[metrics]`` asks for: none when off; the multiprocess mode when the
    process started with ``PROMETHEUS_MULTIPROC_DIR`` (``ConfigError`` if it is not a
    writable directory, or was set only after prometheus-client chose its value class)."""
    if not section.enabled:
        return Metrics()
    env = os.environ if env is None else env
    problems = multiprocess_problems(env)
    path = env.get(MULTIPROC_ENV)
    if path and not problems and not _values_in_files():
        problems.append(f"environment: {MULTIPROC_ENV}: set after the process started; "
                        "set it in the environment the gateway starts with")
    if problems:
        raise ConfigError(problems)
    return PrometheusMetrics(systems=systems, multiprocess_dir=path or None, version=version)


def _values_in_files() -> bool:
    """Whether prometheus-client chose its file-backed values (at import, from the env)."""
    return bool(getattr(prometheus_client.values.ValueClass, "_multiprocess", False))
