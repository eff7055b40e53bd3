"""Counters and histograms kept in plain Python numbers, for the series every request
writes, read by prometheus-client at a scrape.

A silent SSO hop records about ten values: its two requests' counts and times and each
store call's time. prometheus-client's ``Counter.inc`` and ``Histogram.observe`` take a
lock per value and walk the buckets one by one; here a value is a list index and an add
(:func:`bisect.bisect_left` finds the bucket), and the series are handed to
prometheus-client as a custom collector (``collect()``), whose families the exposition
writes like any other's. The children have the same ``inc``/``observe`` calls as
prometheus-client's, so the recorder binds either.

Only for values written on one thread, the event loop's (a scrape may read from another
thread: it sees each number either before or after an add, never a torn one), and only
in one process: with several workers the recorder uses prometheus-client's own
file-backed metrics (``gateway.metrics.recorder``). A tally shows no ``_created``
sample, as multiprocess mode shows none.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

__all__ = ["CounterTally", "HistogramTally", "Tallies", "counted_and_timed"]


class _CounterChild:
    __slots__ = ("cell",)

    def __init__(self) -> None:
        self.cell = [0.0]

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self.cell[0] += amount


class _HistogramChild:
    """``counts[i]``: values in bucket ``i`` alone (the last one: +Inf); then the sum."""

    __slots__ = ("bounds", "counts")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0.0] * (len(bounds) + 2)

    def observe(self, amount: float) -> None:
        counts = self.counts
        counts[bisect_left(self.bounds, amount)] += 1
        counts[-1] += amount


def counted_and_timed(counter: object, histogram: object) -> Callable[[float], None] | None:
    """One request in one call: ``counter`` + 1 and its seconds into ``histogram``, when
    both are tallies' children (None otherwise: call their own ``inc`` and ``observe``)."""
    if not (isinstance(counter, _CounterChild) and isinstance(histogram, _HistogramChild)):
        return None
    cell, bounds, counts = counter.cell, histogram.bounds, histogram.counts

    def record(seconds: float) -> None:
        cell[0] += 1
        counts[bisect_left(bounds, seconds)] += 1
        counts[-1] += seconds

    return record


class _Series:
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)

    def _check(self, values: tuple[str, ...]) -> None:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: {len(self.labelnames)} label values expected, "
                             f"got {len(values)}")


class CounterTally(_Series):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labelnames)
        self.children: dict[tuple[str, ...], _CounterChild] = {}

    def labels(self, *values: str) -> _CounterChild:
        """The child for these label values (made once: bind it, do not look it up per
        value)."""
        child = self.children.get(values)
        if child is None:
            self._check(values)
            child = self.children[values] = _CounterChild()
        return child

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self.children.items()):
            family.add_metric(values, child.cell[0])
        return family


class HistogramTally(_Series):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Sequence[float]) -> None:
        super().__init__(name, documentation, labelnames)
        bounds = tuple(float(b) for b in buckets if not math.isinf(b))
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"{name}: buckets must be increasing")
        self.bounds = bounds
        self.children: dict[tuple[str, ...], _HistogramChild] = {}

    def labels(self, *values: str) -> _HistogramChild:
        child = self.children.get(values)
        if child is None:
            self._check(values)
            child = self.children[values] = _HistogramChild(self.bounds)
        return child

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        uppers = [*map(floatToGoString, self.bounds), "+Inf"]
        for values, child in list(self.children.items()):
            counts = list(child.counts)  # one copy: a scrape's figures agree
            cumulative, buckets = 0.0, []
            for upper, count in zip(uppers, counts[:-1], strict=True):
                cumulative += count
                buckets.append((upper, cumulative))
            family.add_metric(values, buckets, counts[-1])
        return family


class Tallies:
    """The tallies of one registry: a collector (register it once)."""

    def __init__(self) -> None:
        self.series: list[CounterTally | HistogramTally] = []

    def counter(self, name: str, documentation: str,
                labelnames: Sequence[str]) -> CounterTally:
        tally = CounterTally(name, documentation, labelnames)
        self.series.append(tally)
        return tally

    def histogram(self, name: str, documentation: str, labelnames: Sequence[str],
                  buckets: Sequence[float]) -> HistogramTally:
        tally = HistogramTally(name, documentation, labelnames, buckets)
        self.series.append(tally)
        return tally

    def collect(self) -> Iterator[Metric]:
        for tally in self.series:
            yield tally.family()

    def describe(self) -> Iterator[Metric]:
        """The families without samples: the registry checks names at registration."""
        for tally in self.series:
            yield (CounterMetricFamily(tally.name, tally.documentation)
                   if isinstance(tally, CounterTally)
                   else HistogramMetricFamily(tally.name, tally.documentation))
