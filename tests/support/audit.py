"""Reading what the gateway audited: the ``roam.audit`` records a test captured, and a
trail file's events."""

from __future__ import annotations

import json
import logging
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
