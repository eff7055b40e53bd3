"""Where the audit trail's cost on a hop goes: ``$ROAMBENCH_AUDIT_UPTO`` stops the "on"
server's trail after one stage, so that two counts differ by one stage's work.

* ``take``: ``audit_event`` runs and hands its facts to the trail, which keeps nothing;
* ``queue``: events are queued, and the writer drops them as they are (never shaped);
* ``shape``: the writer shapes them into events (redaction, the fields), and the sink
  takes them without chaining, hashing or writing.

Unset, the trail runs whole. A diagnostic for ``bench/instructions.py`` and
``bench/ops_cost.py`` only: it patches the trail's classes in the bench server's process,
which nothing in ``gateway/`` does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.audit.chain import Link
from gateway.audit.event import Event, Reported
from gateway.audit.file_sink import FileSink
from gateway.audit.handler import AuditHandler
from gateway.audit.trail import AuditTrail

__all__ = ["STAGES", "UPTO_ENV", "stop_audit_at"]

UPTO_ENV = "ROAMBENCH_AUDIT_UPTO"

_KEPT_NOTHING = Reported("-", 0.0, "-", "success", None, None, None, None, None, None,
                         None, {})


def _take_nothing(self: AuditHandler, action: str, outcome: str, *, subject: object,
                  client: object, system: object, source: object,
                  details: Mapping[str, object]) -> Reported:
    return _KEPT_NOTHING


async def _drop_unshaped(self: AuditTrail, whole: bool) -> bool:
    self.queue.discard(len(self.queue))
    return True


async def _take_unchained(self: FileSink, events: Sequence[Event]) -> list[Link]:
    return []


# a stage: the method it replaces, and with what
_PATCHES: dict[str, tuple[type[Any], str, Any]] = {
    "take": (AuditHandler, "take", _take_nothing),
    "queue": (AuditTrail, "_flush", _drop_unshaped),
    "shape": (FileSink, "append", _take_unchained),
}
STAGES = tuple(_PATCHES)


def stop_audit_at() -> None:
    """Apply the stage ``$ROAMBENCH_AUDIT_UPTO`` names, if any."""
    stage = os.environ.get(UPTO_ENV)
    if not stage:
        return
    if stage not in _PATCHES:
        raise SystemExit(f"{UPTO_ENV}: one of {', '.join(STAGES)}, not {stage!r}")
    owner, name, replacement = _PATCHES[stage]
    setattr(owner, name, replacement)
