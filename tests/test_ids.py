"""gateway/ids.py: identifiers are URL-safe, of the asked strength, and never repeat."""

from __future__ import annotations

import re

from gateway.ids import new_id


def test_ids_are_url_safe_and_as_long_as_asked() -> None:
    for nbytes, length in ((16, 22), (24, 32), (32, 43)):
        value = new_id(nbytes)
        assert re.fullmatch(r"[A-Za-z0-9_-]+", value)
        assert len(value) == length


def test_ids_do_not_repeat() -> None:
    assert len({new_id(16) for _ in range(10_000)}) == 10_000
