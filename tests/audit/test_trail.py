"""The batch writer: batches by size and by time, never a wait for whoever audits, an
outage kept queued and reported, a full queue counted and said so in the trail."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import anyio
from prometheus_client import CollectorRegistry

from gateway.audit.chain import Link
from gateway.audit.event import Event, new_event
from gateway.audit.file_sink import FileSink
from gateway.audit.record import audit_event
from gateway.audit.trail import AuditTrail
from gateway.audit.verify import verify_trail
from gateway.metrics.recorder import PrometheusMetrics
from tests.support.audit import trail_lines


class CountingSink(FileSink):
    """The file sink, remembering the size of each batch it was given."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[int] = []

    async def append(self, events: Sequence[Event]) -> list[Link]:
        links = await super().append(events)
        self.batches.append(len(events))
        return links


async def until(condition: object, seconds: float = 10) -> None:
    """Wait for ``condition()`` to hold (polling; fails the test after ``seconds``)."""
    with anyio.fail_after(seconds):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - made true elsewhere
            await anyio.sleep(0.01)


def block(path: Path) -> None:
    """Put a file where the trail's directory should be: every write fails (even as root)."""
    path.write_text("in the way")


def unblock(path: Path) -> None:
    path.unlink()
    path.mkdir()


async def test_events_are_written_in_batches(tmp_path: Path) -> None:
    sink = CountingSink(tmp_path / "audit.jsonl")
    trail = AuditTrail(sink, batch_size=5, batch_interval=60)
    async with trail.running():
        for i in range(12):
            audit_event("login", "success", subject=f"c-{i:04d}")
        await until(lambda: sink.batches == [5, 5])  # full batches go at once
        assert len(trail.queue) == 2
    assert sink.batches == [5, 5, 2]  # the rest on the way out
    assert [e["subject"] for e in trail_lines(sink.path)] == [f"c-{i:04d}" for i in range(12)]
    assert (await verify_trail(sink)).ok
    assert trail.stats.written == 12


async def test_a_partial_batch_goes_after_the_interval(tmp_path: Path) -> None:
    sink = CountingSink(tmp_path / "audit.jsonl")
    trail = AuditTrail(sink, batch_size=100, batch_interval=0.05)
    async with trail.running():
        audit_event("logout", "success", subject="c-0001")
        await until(lambda: sink.batches == [1])
        audit_event("logout", "success", subject="c-0002")
        await until(lambda: sink.batches == [1, 1])


async def test_an_outage_keeps_events_queued_and_is_reported(tmp_path: Path) -> None:
    directory = tmp_path / "trail"
    block(directory)
    sink = FileSink(directory / "audit.jsonl")
    trail = AuditTrail(sink, batch_size=2, batch_interval=0.01)
    async with trail.running():
        for i in range(3):
            audit_event("login", "failure", subject=f"c-{i:04d}")  # returns at once
        await until(lambda: trail.write_failures > 0)
        assert trail.stats.failing_since is not None
        assert await trail.problem() == "writes failing"
        assert len(trail.queue) == 3
        unblock(directory)
        assert await trail.flush()
        assert trail.stats.failing_since is None
        assert await trail.problem() is None
    assert [e["subject"] for e in trail_lines(sink.path)] == ["c-0000", "c-0001", "c-0002"]
    assert trail.stats.dropped == 0


async def test_a_full_queue_drops_new_events_and_the_trail_says_how_many(
        tmp_path: Path) -> None:
    directory = tmp_path / "trail"
    block(directory)
    sink = FileSink(directory / "audit.jsonl")
    trail = AuditTrail(sink, queue_size=10, batch_size=10, batch_interval=60)
    async with trail.running():
        for i in range(15):
            audit_event("login", "success", subject=f"c-{i:04d}")
        assert trail.stats.dropped == 5
        assert trail.stats.depth == 10
        assert await trail.problem() == "queue full: events are being dropped"
        unblock(directory)
        assert await trail.flush()
    stored = trail_lines(sink.path)
    assert stored[0]["action"] == "audit.dropped"
    assert stored[0]["outcome"] == "error"
    assert stored[0]["details"]["count"] == 5
    assert [e["subject"] for e in stored[1:]] == [f"c-{i:04d}" for i in range(10)]
    assert (await verify_trail(sink)).ok


async def test_old_events_are_pruned_when_the_trail_starts(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "audit.jsonl")
    now = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    await sink.append([new_event("login", "success", at=now - 200 * 86400)])
    await sink.append([new_event("login", "success", at=now - 10 * 86400)])
    trail = AuditTrail(sink, retention_days=180, clock=lambda: now)
    async with trail.running():
        await until(lambda: len(trail_lines(sink.path)) == 1)
    verdict = await verify_trail(sink)
    assert verdict.ok
    assert (verdict.anchor.seq, verdict.count) == (1, 1)


async def test_the_metrics_count_written_dropped_and_failed(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    directory = tmp_path / "trail"
    block(directory)
    trail = AuditTrail(FileSink(directory / "audit.jsonl"), queue_size=10, batch_size=10,
                       batch_interval=0.01, metrics=metrics)

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    async with trail.running():
        for i in range(12):
            audit_event("login", "success", subject=f"c-{i:04d}")
        await until(lambda: value("roam_audit_write_failures_total") > 0)
        assert value("roam_audit_queue_events") == 10
        assert value("roam_audit_events_total", result="dropped") == 2
        unblock(directory)
        await until(lambda: value("roam_audit_events_total", result="written") == 11)
    assert value("roam_audit_queue_events") == 0
