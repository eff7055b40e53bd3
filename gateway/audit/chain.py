"""The hash chain that makes the audit trail tamper-evident.

Events get consecutive sequence numbers, and each is stored with the hash of the one
before it (``prev``) and its own (``hash``): SHA-256 of the canonical JSON of the event
with its ``seq`` and ``prev`` (keys sorted at every level, no spaces, UTF-8, non-ASCII
as is — :func:`canonical`). So
changing any field of an event changes its hash; removing one leaves a gap and a
``prev`` that no longer matches; moving one breaks both. The first event follows the
*anchor*: ``seq`` 0 and 64 zeros at first, and after old events are pruned the last
pruned event's ``seq`` and hash, so what is kept still verifies on its own. The *head*
(the last ``seq`` and hash, kept beside the events) catches events cut off the end.

:class:`ChainCheck` walks a trail in order and names the first event that is wrong.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.audit.event import Event

__all__ = ["GENESIS", "Anchor", "ChainCheck", "Link", "Problem", "canonical", "chain", "digest"]

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Anchor:
    """A point of the chain: what the next event must follow (``seq`` + 1, ``hash``)."""

    seq: int
    hash: str

    @classmethod
    def genesis(cls) -> Anchor:
        return cls(0, GENESIS)


@dataclass(slots=True)  # not frozen: made once per event, on the writer's path
class Link:
    """An event as it is stored: its place in the chain and the two hashes."""

    seq: int
    prev: str
    hash: str
    event: Event
    #: the canonical bytes that were hashed, when :func:`chain` made the link: a sink
    #: that writes JSON builds on them instead of serialising the event again
    body: bytes | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The stored form (file lines, exports): the event with ``seq``, ``prev``, ``hash``."""
        return {"seq": self.seq, "prev": self.prev, "hash": self.hash, **self.event.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Link:
        """``ValueError`` if ``data`` is no stored event."""
        seq, prev, hashed = data.get("seq"), data.get("prev"), data.get("hash")
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(prev, str) \
                or not isinstance(hashed, str):
            raise ValueError("seq, prev or hash missing or of the wrong type")
        return cls(seq, prev, hashed, Event.from_json(data))


def canonical(seq: int, prev: str, event: Event) -> bytes:
    """The bytes that are hashed: one spelling of an event, whoever writes it.

    Event values are text, integers (below 10^10), booleans and null, never floats
    (``redact``), so this is exactly Python's ``json.dumps(body, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` in UTF-8 — what any JSON library with
    sorted keys and no spaces writes — made by orjson, 15 times faster. A value no event
    can hold (a tampered row's float or huge integer) takes the slow path, and fails."""
    body = event.to_json()
    body["seq"], body["prev"] = seq, prev
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer past 64 bits
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")


def digest(seq: int, prev: str, event: Event) -> str:
    return hashlib.sha256(canonical(seq, prev, event)).hexdigest()


def chain(after: Anchor, events: Sequence[Event]) -> list[Link]:
    """``events`` appended after ``after``: numbered and hashed in order."""
    links: list[Link] = []
    seq, prev = after.seq, after.hash
    for event in events:
        seq += 1
        body = canonical(seq, prev, event)
        hashed = hashlib.sha256(body).hexdigest()
        links.append(Link(seq, prev, hashed, event, body))
        prev = hashed
    return links


@dataclass(frozen=True, slots=True)
class Problem:
    """The first event that does not verify, and why."""

    seq: int | None  # None: the trail's end, not one event
    event_id: str | None
    reason: str

    def __str__(self) -> str:
        if self.seq is None:
            return self.reason
        return f"event seq {self.seq} (id {self.event_id}): {self.reason}"


class ChainCheck:
    """Feed the stored events in ``seq`` order (:meth:`add`), then :meth:`finish` with the
    head; the first :class:`Problem` found is kept and the rest is not looked at."""

    def __init__(self, anchor: Anchor) -> None:
        self.anchor = anchor
        self.expected = anchor.seq + 1
        self.prev = anchor.hash
        self.count = 0
        self.problem: Problem | None = None

    def add(self, link: Link) -> Problem | None:
        if self.problem is not None:
            return self.problem
        self.problem = self._judge(link)
        if self.problem is None:
            self.count += 1
            self.expected, self.prev = link.seq + 1, link.hash
        return self.problem

    def _judge(self, link: Link) -> Problem | None:
        def bad(reason: str) -> Problem:
            return Problem(link.seq, link.event.id, reason)

        if link.seq < self.expected:
            return bad(f"out of order: seq {link.seq} comes after seq {self.expected - 1}")
        if link.seq > self.expected:
            missing = (f"seq {self.expected}" if link.seq == self.expected + 1
                       else f"seq {self.expected} to {link.seq - 1}")
            return bad(f"the event(s) before it are missing ({missing})")
        if link.prev != self.prev:
            return bad("does not follow the event before it (that one was removed, "
                       "replaced or moved)")
        if digest(link.seq, link.prev, link.event) != link.hash:
            return bad("altered: its content does not match its hash")
        return None

    def add_all(self, links: Iterable[Link]) -> Problem | None:
        for link in links:
            if self.add(link) is not None:
                break
        return self.problem

    def finish(self, head: Anchor | None) -> Problem | None:
        """The end: the head must be the last event seen (else events were cut off)."""
        if self.problem is None and head is not None and (
                head.seq != self.expected - 1 or head.hash != self.prev):
            if head.seq > self.expected - 1:
                self.problem = Problem(None, None, f"events after seq {self.expected - 1} "
                                       f"are missing (the trail's head is seq {head.seq})")
            else:
                self.problem = Problem(None, None, f"the trail's head (seq {head.seq}) does "
                                       f"not match its last event (seq {self.expected - 1})")
        return self.problem

    @property
    def last(self) -> Anchor:
        """The last event verified (the anchor if none)."""
        return Anchor(self.expected - 1, self.prev)
