"""Observations held a moment and recorded a batch at a time.

A request records into prometheus-client several times (its route's counter and
histogram, each timed store call); each call takes a lock and walks the buckets. Made
one at a time, between a request's other work, that code runs cold: on a shared machine
it cost a silent SSO hop ~3 % of its CPU where a tight loop of the same calls predicts
under 1 % (docs/performance.md). Held here and recorded :data:`BATCH` at a time, or
:data:`WITHIN` seconds after the first (a timer on the running event loop), it runs hot.
A scrape records what is held first (:meth:`Later.flush`), so ``/metrics`` is never
behind. With several worker processes (prometheus-client's multiprocess mode) a worker
cannot flush another's, so there ``batch`` is 1: each value is recorded at once. Used
from the event loop's thread (with no loop running, a value is recorded at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["BATCH", "WITHIN", "Later"]

BATCH = 64
WITHIN = 1.0


class Later:
    def __init__(self, *, batch: int = BATCH, within: float = WITHIN) -> None:
        self.batch = batch
        self.within = within
        self._held: list[tuple[Callable[[float], None], float]] = []
        # the loop on which a flush is set for ``within`` after the oldest held value
        self._timer: asyncio.AbstractEventLoop | None = None

    def add(self, record: Callable[[float], None], value: float) -> None:
        """``record(value)``, soon."""
        held = self._held
        held.append((record, value))
        if len(held) >= self.batch:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop here: nothing would flush it later
            self.flush()
            return
        if self._timer is not loop:  # none set (or set on a loop since gone): one timer
            loop.call_later(self.within, self._timed_out)
            self._timer = loop

    def _timed_out(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Record everything held."""
        held, self._held = self._held, []
        for record, value in held:
            record(value)
