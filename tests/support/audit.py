"""Reading what the gateway audited: the ``roam.audit`` records a test captured (the log
lines: failures, by default), and a trail file's events (everything)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def audited(records: Iterable[logging.LogRecord], action: str,
            outcome: str | None = None) -> list[logging.LogRecord]:
    """The ``roam.audit`` records of ``action`` (and ``outcome``), in order."""
    return [r for r in records if r.name == "roam.audit"
            and getattr(r, "action", None) == action
            and (outcome is None or getattr(r, "outcome", None) == outcome)]


def trail_lines(path: Path) -> list[dict[str, Any]]:
    """The stored events of a trail file (an anchor line left out)."""
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
    return [line for line in lines if "anchor" not in line]


def kept(path: Path, action: str, outcome: str | None = None, *,
         within: float = 10.0) -> list[dict[str, Any]]:
    """The events of ``action`` (and ``outcome``) in the trail file at ``path``, waiting
    up to ``within`` seconds for the first: a running trail writes in batches, every
    second by default. Empty if none came."""
    deadline = time.monotonic() + within
    while True:
        try:
            found = [e for e in trail_lines(path) if e["action"] == action
                     and (outcome is None or e["outcome"] == outcome)]
        except ValueError:  # a batch being appended as we read: read again
            found = []
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
