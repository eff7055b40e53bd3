"""The hash chain: any altered, removed, moved or cut-off event is found, and named."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json

from gateway.audit.chain import GENESIS, Anchor, ChainCheck, Link, chain, digest
from gateway.audit.event import new_event


def links(count: int, after: Anchor | None = None) -> list[Link]:
    events = [new_event("login", "success", at=1767225600.0 + i, subject=f"c-{i:04d}")
              for i in range(count)]
    return chain(after or Anchor.genesis(), events)


def check(stored: list[Link], head: Anchor | None, anchor: Anchor | None = None) -> ChainCheck:
    checker = ChainCheck(anchor or Anchor.genesis())
    checker.add_all(stored)
    checker.finish(head)
    return checker


def head_of(stored: list[Link]) -> Anchor:
    return Anchor(stored[-1].seq, stored[-1].hash)


def test_a_whole_chain_verifies() -> None:
    stored = links(5)
    assert [link.seq for link in stored] == [1, 2, 3, 4, 5]
    assert stored[0].prev == GENESIS
    assert all(b.prev == a.hash for a, b in itertools.pairwise(stored))
    checker = check(stored, head_of(stored))
    assert checker.problem is None
    assert checker.count == 5
    assert check([], Anchor.genesis()).problem is None


def test_an_altered_event_is_named() -> None:
    stored = links(5)
    event = dataclasses.replace(stored[2].event, outcome="failure")
    stored[2] = dataclasses.replace(stored[2], event=event)
    problem = check(stored, head_of(stored)).problem
    assert problem is not None
    assert (problem.seq, problem.event_id) == (3, event.id)
    assert "altered" in problem.reason


def test_an_altered_event_with_a_new_hash_breaks_the_next_one() -> None:
    stored = links(5)
    event = dataclasses.replace(stored[2].event, subject="c-9999")
    rehashed = dataclasses.replace(stored[2], event=event,
                                   hash=digest(3, stored[2].prev, event))
    stored[2] = rehashed
    problem = check(stored, head_of(stored)).problem
    assert problem is not None
    assert problem.seq == 4
    assert "does not follow" in problem.reason


def test_a_removed_event_is_named_by_the_one_after_it() -> None:
    stored = links(5)
    del stored[1]
    problem = check(stored, head_of(stored)).problem
    assert problem is not None
    assert problem.seq == 3
    assert "missing (seq 2)" in problem.reason


def test_reordered_events_are_found() -> None:
    stored = links(5)
    stored[1], stored[2] = stored[2], stored[1]
    problem = check(stored, head_of(stored)).problem
    assert problem is not None
    assert problem.seq == 3
    # renumbered to hide the move: the content no longer matches its hash
    renumbered = links(5)
    second, third = renumbered[1], renumbered[2]
    renumbered[1] = dataclasses.replace(third, seq=2)
    renumbered[2] = dataclasses.replace(second, seq=3)
    problem = check(renumbered, head_of(renumbered)).problem
    assert problem is not None
    assert problem.seq == 2


def test_events_cut_off_the_end_are_found_by_the_head() -> None:
    stored = links(5)
    problem = check(stored[:3], head_of(stored)).problem
    assert problem is not None
    assert problem.seq is None
    assert "after seq 3 are missing" in str(problem)


def test_a_pruned_trail_verifies_from_its_anchor() -> None:
    stored = links(6)
    anchor = Anchor(stored[2].seq, stored[2].hash)
    assert check(stored[3:], head_of(stored), anchor).problem is None
    problem = check(stored[4:], head_of(stored), anchor).problem
    assert problem is not None
    assert problem.seq == 5


def test_a_siem_can_check_an_exported_line_with_plain_json() -> None:
    """docs/operations.md promises the canonical form is json.dumps' sorted, compact one."""
    event = new_event("login", "failure", at=1767225600.5, subject="138****0001",
                      details={"n": 3, "ok": False, "none": None, "地区": "岳麓区", "f": 0.5})
    line = chain(Anchor.genesis(), [event])[0].to_json()
    stored = line.pop("hash")
    text = json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == stored
