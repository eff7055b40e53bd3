"""Where the audit trail is kept: the small protocol both sinks implement.

A sink chains and appends a batch atomically (:meth:`AuditSink.append`: the batch's
events follow the current head, whichever writer got there first), prunes old events
behind an anchor, answers whether it can be written (:meth:`AuditSink.check`, for
readiness) and hands out a consistent :class:`Snapshot` to verify or export. Every
failure is an :class:`~gateway.errors.AuditError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gateway.audit.chain import Anchor, Link
from gateway.audit.event import Event

__all__ = ["AuditSink", "Snapshot"]


@dataclass(frozen=True)
class Snapshot:
    """One consistent view of a trail: the anchor the first kept event follows, the
    head (the last event appended), and the events in ``seq`` order."""

    anchor: Anchor
    head: Anchor | None  # None: the sink keeps no head apart from the events
    links: AsyncIterator[Link]


class AuditSink(Protocol):
    @property
    def name(self) -> str:
        """``file`` or ``postgresql``, and where: for messages (never a password)."""

    async def append(self, events: Sequence[Event]) -> list[Link]:
        """Chain ``events`` after the head and store them, all or none."""

    async def prune(self, before: datetime) -> int:
        """Remove the oldest events, up to the last one older than ``before`` with
        nothing newer before it; the anchor moves to the last removed. Returns how many."""

    async def check(self) -> None:
        """Raise ``AuditError`` unless an append could be made now."""

    def snapshot(self, *, since: datetime | None = None
                 ) -> AbstractAsyncContextManager[Snapshot]:
        """A consistent view; ``since``: only events at or after that time (export)."""

    async def close(self) -> None: ...
