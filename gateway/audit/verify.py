"""Verifying a stored trail end to end: ``roam audit verify``."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.audit.chain import Anchor, ChainCheck, Problem
from gateway.audit.sink import AuditSink

__all__ = ["Verdict", "verify_trail"]


@dataclass(frozen=True)
class Verdict:
    anchor: Anchor  # what the first kept event follows (seq 0 unless pruned)
    last: Anchor  # the last event that verified
    count: int  # events that verified
    problem: Problem | None  # the first event that did not, or the end that is missing

    @property
    def ok(self) -> bool:
        return self.problem is None


async def verify_trail(sink: AuditSink) -> Verdict:
    """Walk the whole trail in one snapshot; stop at the first problem."""
    async with sink.snapshot() as snapshot:
        check = ChainCheck(snapshot.anchor)
        async for link in snapshot.links:
            if check.add(link) is not None:
                break
        check.finish(snapshot.head)
        return Verdict(snapshot.anchor, check.last, check.count, check.problem)
