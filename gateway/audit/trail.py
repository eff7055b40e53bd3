"""The audit trail of one gateway process: the queue, the batch writer, pruning, and
whether it is healthy.

While :meth:`AuditTrail.running` (the app's lifespan, or a CLI command) ``audit_event``'s
events and the ``roam.audit`` logger's records are queued and one task writes them to the
sink in batches: when ``batch_size`` are waiting, else every ``batch_interval`` seconds.
A login only queues. When the sink fails (a database outage) the batch stays queued and
the writer tries again with backoff, up to 30 s apart; while the queue is full new
events are dropped and counted, and an ``audit.dropped`` event saying how many is written
first when writing works again. Failures and drops are logged on ``roam.trail`` (at most
once a minute while they last), counted in :attr:`AuditTrail.stats` and the metrics
(``roam_audit_*``), and make :meth:`AuditTrail.problem` — readiness — answer what is
wrong. Once an hour (and at start) events older than ``retention_days`` are pruned
behind an anchor. On the way out what is
queued is written, for up to ``drain_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio

from gateway.audit.event import Event, new_event
from gateway.audit.handler import AuditHandler, LogEvents
from gateway.audit.queue import EventQueue
from gateway.audit.sink import AuditSink
from gateway.errors import AuditError
from gateway.metrics.recorder import Metrics

__all__ = ["AuditStats", "AuditTrail", "node_name"]

log = logging.getLogger("roam.trail")  # not under roam.audit: its lines are no events

PRUNE_EVERY = 3600.0
MAX_BACKOFF = 30.0
REPORT_EVERY = 60.0


def node_name() -> str:
    """This process, as events name their writer: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class AuditStats:
    """Counters since start, for metrics and ``/readyz``."""

    queued: int  # events accepted into the queue
    written: int  # events stored (``audit.dropped`` notes included)
    dropped: int  # events lost: queue full, or refused by the sink as they are
    write_failures: int  # batches that failed and were kept for another try
    depth: int  # events waiting now
    capacity: int
    failing_since: float | None  # time of the first failure of the current outage


class AuditTrail:
    def __init__(self, sink: AuditSink, *, queue_size: int = 10_000, batch_size: int = 200,
                 batch_interval: float = 1.0, retention_days: int = 180,
                 drain_timeout: float = 5.0, node: str | None = None,
                 metrics: Metrics | None = None, log_events: LogEvents = "failures",
                 clock: Callable[[], float] = time.time) -> None:
        self.sink = sink
        self.batch_size = batch_size
        self.batch_interval = batch_interval
        self.retention_days = retention_days
        self.drain_timeout = drain_timeout
        self.node = node or node_name()
        self.log_events: LogEvents = log_events  # which kept events are log lines too
        self.clock = clock
        self.metrics = metrics or Metrics()
        self._reported_stats = AuditStats(0, 0, 0, 0, 0, queue_size, None)  # to the metrics
        self.queue = EventQueue(queue_size, batch_size=batch_size, on_batch=self._wake)
        self.written = 0
        self.refused = 0  # events the sink refused for good (counted as dropped)
        self.write_failures = 0
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._ready: asyncio.Event | None = None
        self._next_prune = 0.0
        self._reported: dict[str, float] = {}
        self._flushing = anyio.Lock()  # the writer and a caller's flush take turns

    # running -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Receive ``roam.audit`` records and write them until the block ends."""
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        self._ready = asyncio.Event()
        handler = AuditHandler(self.queue, node=self.node, log_events=self.log_events)
        handler.attach()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._write_loop)
                try:
                    yield
                finally:
                    group.cancel_scope.cancel()
        finally:
            handler.detach()
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(self.drain_timeout):
                    await self.flush()
                self._report_metrics()
                if len(self.queue):
                    log.error("audit events not written at shutdown",
                              extra={"count": len(self.queue), "sink": self.sink.name})
                with contextlib.suppress(AuditError):
                    await self.sink.close()
            self._loop = self._ready = None

    def _wake(self) -> None:
        """A batch is ready (called in whichever thread queued the event)."""
        loop, ready = self._loop, self._ready
        if loop is None or ready is None:
            return
        if threading.get_ident() == self._loop_thread:
            ready.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(ready.set)

    async def _write_loop(self) -> None:
        backoff = 0.0
        while True:
            await self._prune_if_due()
            ready = self._ready
            timed_out = True
            if ready is not None:
                with anyio.move_on_after(max(self.batch_interval, backoff)) as waiting:
                    await ready.wait()
                timed_out = waiting.cancelled_caught
                ready.clear()
            # woken by a full batch: full batches only; after the interval: all of it
            written = await self.flush(whole=timed_out)
            backoff = 0.0 if written else min(MAX_BACKOFF, max(0.5, backoff * 2))
            self._report_metrics()

    def _report_metrics(self) -> None:
        """What changed since the last report, to the metrics (the writer's task only)."""
        now, then = self.stats, self._reported_stats
        self.metrics.audit(written=now.written - then.written,
                           dropped=now.dropped - then.dropped,
                           failed=now.write_failures - then.write_failures, queued=now.depth)
        self._reported_stats = now

    # writing -----------------------------------------------------------------------------

    async def flush(self, *, whole: bool = True) -> bool:
        """Write what is queued, batch by batch (``whole``: the last, partial batch too);
        False at the first failure (what failed stays queued)."""
        async with self._flushing:
            return await self._flush(whole)

    async def _flush(self, whole: bool) -> bool:
        while True:
            if not whole and len(self.queue) < self.batch_size:
                return True
            dropped = self.queue.take_dropped()
            note = self._drop_note(dropped) if dropped else None
            batch = self.queue.peek(self.batch_size - (1 if note else 0))
            events = [note, *batch] if note is not None else batch
            if not events:
                return True
            try:
                await self.sink.append(events)
            except AuditError as error:
                self.queue.give_back_dropped(dropped)
                if error.retry or not batch:
                    self._failed(error)
                    return False
                # events the sink can never take as they are: lost, and said so next time
                self.queue.discard(len(batch))
                self.queue.give_back_dropped(len(batch))
                self.refused += len(batch)
                log.error("audit events refused by the sink",
                          extra={"count": len(batch), "sink": self.sink.name,
                                 "cause": str(error)})
                continue
            self.queue.discard(len(batch))
            self.written += len(events)
            if self.failing_since is not None:
                log.warning("audit sink writable again",
                            extra={"sink": self.sink.name,
                                   "down_seconds": round(self.clock() - self.failing_since, 1)})
                self.failing_since = None
                self.last_error = None

    def _drop_note(self, count: int) -> Event:
        self._report("dropped", "audit events dropped: the queue was full",
                     count=count, capacity=self.queue.capacity)
        return new_event("audit.dropped", "error", at=self.clock(), node=self.node,
                         details={"count": count, "reason": "queue full or refused"})

    def _failed(self, error: AuditError) -> None:
        self.write_failures += 1
        self.last_error = str(error)
        if self.failing_since is None:
            self.failing_since = self.clock()
            self._reported.pop("failing", None)
        self._report("failing", "audit sink failing: events stay queued",
                     cause=str(error), queued=len(self.queue))

    def _report(self, what: str, message: str, **fields: object) -> None:
        now = self.clock()
        if now - self._reported.get(what, -REPORT_EVERY) >= REPORT_EVERY:
            self._reported[what] = now
            log.error(message, extra={"sink": self.sink.name, **fields})

    async def _prune_if_due(self) -> None:
        now = self.clock()
        if self.retention_days <= 0 or now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY
        before = datetime.fromtimestamp(now, UTC) - timedelta(days=self.retention_days)
        try:
            removed = await self.sink.prune(before)
        except AuditError as error:
            log.error("audit pruning failed", extra={"sink": self.sink.name,
                                                     "cause": str(error)})
            return
        if removed:
            log.info("audit events pruned", extra={"count": removed, "sink": self.sink.name,
                                                   "before": before.isoformat()})

    # health ------------------------------------------------------------------------------

    @property
    def stats(self) -> AuditStats:
        return AuditStats(queued=self.queue.queued_total, written=self.written,
                          dropped=self.queue.dropped_total + self.refused,
                          write_failures=self.write_failures, depth=len(self.queue),
                          capacity=self.queue.capacity, failing_since=self.failing_since)

    async def problem(self) -> str | None:
        """What keeps the trail from recording now, in a few words (no secrets), or None.
        The cause is logged."""
        if self.queue.full:
            return "queue full: events are being dropped"
        if self.failing_since is not None:
            return "writes failing"
        try:
            await self.sink.check()
        except AuditError as error:
            log.warning("audit sink not writable", extra={"cause": str(error)})
            return "sink not writable"
        return None
