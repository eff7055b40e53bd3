"""The store's circuit breaker: after a call timed out, calls fail at once for a few
seconds instead of each waiting out the timeout again.

A frozen or partitioned Redis answers nothing, and every request would wait
``[store] timeout`` for its 503. Once a call timed out the breaker opens: for
``open_for`` seconds calls raise :class:`~gateway.errors.StoreError` without being sent
(their 503 is immediate); then calls go through again, and the next timeout opens it
again, so a store that came back is used at once and a store still gone costs one
timeout per window. A refused connection fails fast by itself and does not open it:
after a quick Redis restart one failed call must not refuse everything for seconds.
Transitions are logged on ``roam.store`` and told to ``on_change`` (the metric
``roam_store_circuit_open``): open from a timeout until the next answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.errors import StoreError

__all__ = ["Breaker"]

log = logging.getLogger("roam.store")


class Breaker:
    def __init__(self, open_for: float, *, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[bool], None] | None = None) -> None:
        self.open_for = open_for  # 0: never opens
        self.clock = clock
        self.on_change = on_change  # told True when it opens, False when an answer closes it
        self._until = 0.0  # calls fail at once before this time; 0: no timeout since the
        # last answer (the outage, if any, is over)

    @property
    def open(self) -> bool:
        return bool(self._until) and self.clock() < self._until

    def check(self) -> None:
        """Raise StoreError while the breaker is open (the call is not sent)."""
        if self.open:
            raise StoreError("store not asked: it timed out moments ago (circuit open)")

    def timed_out(self) -> None:
        """A call found no answer within the timeout: open for ``open_for`` seconds."""
        if self.open_for <= 0:
            return
        opening = not self._until
        self._until = self.clock() + self.open_for
        if opening:
            log.warning("store circuit opened: calls fail at once",
                        extra={"seconds": self.open_for})
            if self.on_change is not None:
                self.on_change(True)

    def answered(self) -> None:
        """A call got its answer: the store works."""
        if self._until:
            self._until = 0.0
            log.warning("store circuit closed: the store answers again")
            if self.on_change is not None:
                self.on_change(False)
