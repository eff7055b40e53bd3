"""The events waiting to be written: bounded, and never a wait for whoever adds one.

What ``audit_event`` reports waits here as it was reported (a
:class:`~gateway.audit.event.Reported`) and becomes an event when the writer takes it
(:meth:`EventQueue.peek`), a batch at a time, off the request's path.

A login must not wait for the audit trail, so :meth:`EventQueue.put` never blocks: when
the queue is full the new event is dropped and counted, and the writer records how many
were lost as an event of its own once it can write again. Events are taken out only
after the sink stored them (:meth:`peek`, then :meth:`discard`), so an outage keeps them
queued, up to the bound. Thread-safe: a log call may come from any thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from gateway.audit.event import Event, Reported

__all__ = ["EventQueue"]


class EventQueue:
    def __init__(self, capacity: int, *, batch_size: int,
                 on_batch: Callable[[], None] | None = None) -> None:
        self.capacity = capacity
        self.batch_size = batch_size
        self.on_batch = on_batch  # called (in the putting thread) when a batch is ready
        self._events: deque[Event | Reported] = deque()
        self._lock = threading.Lock()
        self._dropped = 0  # since the writer last took the count
        self.dropped_total = 0
        self.queued_total = 0

    def put(self, event: Event | Reported) -> bool:
        """Queue ``event``; False (and counted) if the queue is full."""
        with self._lock:
            if len(self._events) >= self.capacity:
                self._dropped += 1
                self.dropped_total += 1
                return False
            self._events.append(event)
            self.queued_total += 1
            ready = len(self._events) == self.batch_size
        if ready and self.on_batch is not None:
            self.on_batch()
        return True

    def peek(self, count: int) -> list[Event]:
        """The oldest ``count`` events, left in the queue (taken again, a reported event
        is the same event)."""
        with self._lock:
            items = [self._events[i] for i in range(min(count, len(self._events)))]
        return [item if isinstance(item, Event) else item.event() for item in items]

    def discard(self, count: int) -> None:
        """Remove the oldest ``count`` events (stored by the sink)."""
        with self._lock:
            for _ in range(min(count, len(self._events))):
                self._events.popleft()

    def take_dropped(self) -> int:
        """How many were dropped since the last call."""
        with self._lock:
            dropped, self._dropped = self._dropped, 0
            return dropped

    def give_back_dropped(self, count: int) -> None:
        """A count taken that could not be recorded after all."""
        with self._lock:
            self._dropped += count

    @property
    def full(self) -> bool:
        return len(self._events) >= self.capacity

    def __len__(self) -> int:
        return len(self._events)
