"""Tallies (gateway/metrics/tally.py) read by a scrape exactly as prometheus-client's own
Counter and Histogram would show the same values."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics.recorder import REQUEST_BUCKETS, PrometheusMetrics
from gateway.metrics.tally import Tallies, counted_and_timed

VALUES = [0.0, 0.0004, 0.001, 0.0010001, 0.003, 0.025, 0.7, 5.0, 31.0, 1e9]


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                  float]:
    """Every sample but ``_created`` (a tally has none, as multiprocess mode has none)."""
    found = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_a_tally_shows_what_prometheus_client_shows_for_the_same_values() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("roam_x_total", "Xs.", ("route", "status"), registry=theirs)
    histogram = Histogram("roam_x_seconds", "X time.", ("route",), buckets=REQUEST_BUCKETS,
                          registry=theirs)
    tallies = Tallies()
    counter_tally = tallies.counter("roam_x_total", "Xs.", ("route", "status"))
    histogram_tally = tallies.histogram("roam_x_seconds", "X time.", ("route",),
                                        REQUEST_BUCKETS)
    ours.register(tallies)
    for index, value in enumerate(VALUES):
        route = "/token" if index % 3 else "/authorize"
        for made in (counter, counter_tally):
            made.labels(route, "200").inc()
        counter.labels(route, "400").inc(2.5)
        counter_tally.labels(route, "400").inc(2.5)
        histogram.labels(route).observe(value)
        histogram_tally.labels(route).observe(value)
    assert samples(ours) == samples(theirs)
    assert samples(ours)[("roam_x_seconds_count", (("route", "/token"),))] == 6


def test_a_tally_refuses_what_prometheus_client_refuses() -> None:
    tallies = Tallies()
    counter = tallies.counter("roam_y_total", "Ys.", ("a",))
    with pytest.raises(ValueError, match="label values"):
        counter.labels("one", "two")
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("one").inc(-1)
    with pytest.raises(ValueError, match="increasing"):
        tallies.histogram("roam_y_seconds", "Y.", (), (0.5, 0.1))
    registry = CollectorRegistry()
    registry.register(tallies)
    with pytest.raises(ValueError, match="Duplicated"):  # a name taken twice
        Counter("roam_y_total", "Ys again.", registry=registry)


def test_a_scrape_from_another_thread_sees_whole_values() -> None:
    """The gateway scrapes in a worker thread while the loop's thread records."""
    metrics = PrometheusMetrics()
    stop = threading.Event()

    def record() -> None:
        while not stop.is_set():
            metrics.request("/token", "POST", 200, 0.002)

    writer = threading.Thread(target=record)
    writer.start()
    try:
        seen = []
        for _ in range(20):
            body, _ = metrics.exposition("text/plain")
            found = {s.name: s.value for f in text_string_to_metric_families(body.decode())
                     for s in f.samples if s.labels.get("route") == "/token"
                     and s.labels.get("le") in (None, "+Inf")}
            seen.append(found.get("roam_http_requests_total", 0.0))
            count = found.get("roam_http_request_duration_seconds_count", 0.0)
            assert count == int(count)
    finally:
        stop.set()
        writer.join()
    assert seen == sorted(seen)
    assert seen[-1] > 0


def test_a_request_counted_and_timed_in_one_call_shows_what_two_calls_show() -> None:
    apart, fused = Tallies(), Tallies()
    made = [(tallies.counter("roam_z_total", "Zs.", ("route",)),
             tallies.histogram("roam_z_seconds", "Z time.", ("route",), REQUEST_BUCKETS))
            for tallies in (apart, fused)]
    counter, histogram = made[0][0].labels("/token"), made[0][1].labels("/token")
    record = counted_and_timed(made[1][0].labels("/token"), made[1][1].labels("/token"))
    assert record is not None
    for value in VALUES:
        counter.inc()
        histogram.observe(value)
        record(value)
    shown = [CollectorRegistry(), CollectorRegistry()]
    shown[0].register(apart)
    shown[1].register(fused)
    assert samples(shown[1]) == samples(shown[0])
    assert samples(shown[1])[("roam_z_total", (("route", "/token"),))] == len(VALUES)


def test_prometheus_clients_own_metrics_are_not_fused() -> None:
    registry = CollectorRegistry()
    counter = Counter("roam_w_total", "Ws.", registry=registry)
    histogram = Histogram("roam_w_seconds", "W.", registry=registry)
    assert counted_and_timed(counter, histogram) is None
