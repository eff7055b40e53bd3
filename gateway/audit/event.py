"""One audit event: what happened, with what outcome, to whom, for which client or
system, from which address, in which request, when.

The fields are the ones 等保 2.0 asks of an audit record (who, what, when, outcome) and
that a SIEM joins on: ``subject`` is the account's opaque ``sub`` or a masked user name,
never a raw phone or ID number; ``client`` an RP's ``client_id``, ``system`` a system id;
``source`` the client's address; ``request_id`` the id in the JSON logs and in
``X-Request-Id``; ``node`` the process that wrote it. ``details`` are the event's own
scalar fields, redacted (``gateway.audit.redact``). :meth:`Event.to_json` is the one
form an event has on disk, in PostgreSQL's columns, in exports and under the hash.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, get_args

from gateway.audit.redact import CLEAN_TEXTS, Scalar, redact_fields, redact_text
from gateway.logs import RequestPeer, peer_address

__all__ = ["OUTCOMES", "Event", "Outcome", "Reported", "format_time", "new_event",
           "new_event_id", "parse_time"]

Outcome = Literal["success", "failure", "denied", "locked", "error"]
"""success; failure (wrong credentials, a bad or spent token); denied (refused by policy:
throttled, too low a level, not allowed); locked (too many failures); error (the
gateway failed)."""

OUTCOMES: tuple[str, ...] = get_args(Outcome)


def format_time(moment: datetime) -> str:
    """UTC to the microsecond, ``2026-05-12T01:30:01.417000Z``: one spelling per instant.

    Hashed with every event: the text up to the second is made once per second (a trail's
    events come in order), the rest is the microseconds — four times cheaper than
    ``isoformat``, and the same text."""
    global _LAST_SECOND
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    second = (moment.year, moment.month, moment.day, moment.hour, moment.minute,
              moment.second)
    last = _LAST_SECOND  # one read: writers on other threads replace it whole
    if last[0] != second:
        year, month, day, hour, minute, sec = second
        last = _LAST_SECOND = (
            second, f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{sec:02d}")
    return f"{last[1]}.{moment.microsecond:06d}Z"


_LAST_SECOND: tuple[tuple[int, ...], str] = ((), "")


def parse_time(text: str) -> datetime:
    """The inverse of :func:`format_time` (any ISO 8601 time with an offset is taken)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time without an offset: {text!r}")
    return moment.astimezone(UTC)


def _text(value: object, limit: int = 256) -> str | None:
    if value is None or value == "":
        return None
    if value.__class__ is str and value in CLEAN_TEXTS:  # seen clean before: most values
        return value[:limit]
    return redact_text(value if isinstance(value, str) else str(value))[:limit]


# Event ids: 80 random bits per process, then a counter (32 hex digits, unique across
# processes and writers without a system call per event, as request ids are made).
_ID_PREFIX = uuid.uuid4().hex[:20]
_ID_COUNT = itertools.count()


def new_event_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNT) & 0xFFFF_FFFF_FFFF:012x}"


@dataclass(slots=True)  # not frozen: its __init__ would cost each event ~1 µs more
class Event:
    id: str
    time: datetime  # aware, UTC
    action: str
    outcome: str
    subject: str | None = None
    client: str | None = None
    system: str | None = None
    source: str | None = None
    request_id: str | None = None
    node: str | None = None
    details: Mapping[str, Scalar] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "time": format_time(self.time), "action": self.action,
                "outcome": self.outcome, "subject": self.subject, "client": self.client,
                "system": self.system, "source": self.source, "request_id": self.request_id,
                "node": self.node, "details": dict(self.details)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        """``ValueError`` if ``data`` is not an event's :meth:`to_json`."""
        try:
            details = data["details"]
            if not isinstance(details, dict):
                raise ValueError("details is not an object")
            optional = {name: data[name] for name in
                        ("subject", "client", "system", "source", "request_id", "node")}
            if any(v is not None and not isinstance(v, str) for v in optional.values()):
                raise ValueError("a field that must be text is not")
            if not all(isinstance(data[k], str) for k in ("id", "time", "action", "outcome")):
                raise ValueError("id, time, action and outcome must be text")
            return cls(id=data["id"], time=parse_time(data["time"]), action=data["action"],
                       outcome=data["outcome"], details=details, **optional)
        except KeyError as missing:
            raise ValueError(f"no field {missing}") from None


def new_event(action: str, outcome: str, *, at: float | datetime, subject: object = None,
              client: object = None, system: object = None, source: object = None,
              request_id: object = None, node: str | None = None,
              details: Mapping[str, Any] | None = None, id: str | None = None) -> Event:
    """An event (with a fresh id unless given), every value redacted and cut to size."""
    moment = at if isinstance(at, datetime) else datetime.fromtimestamp(at, UTC)
    # positional, and no call for a field left out: made for every event
    return Event(id or new_event_id(),
                 moment if moment.tzinfo is UTC else moment.astimezone(UTC),
                 _text(action, 64) or "unknown",
                 outcome if outcome in OUTCOMES else "error",
                 None if subject is None else _text(subject),
                 None if client is None else _text(client),
                 None if system is None else _text(system),
                 None if source is None else _text(source, 64),
                 None if request_id is None else _text(request_id, 64), node,
                 redact_fields(details) if details else {})


class Reported(NamedTuple):
    """An event as ``audit_event`` reported it, not yet an :class:`Event`: the request's
    facts taken as they are (its id and time fixed), while the redaction, the client's
    address and the shaping wait for the trail's writer, which does them a batch at a
    time (:meth:`event`). A request pays for a tuple."""

    id: str
    at: float
    action: str
    outcome: str
    subject: object
    client: object
    system: object
    source: object
    peer: RequestPeer | None  # the request, for its client address when ``source`` is None
    request_id: str | None
    node: str | None
    details: Mapping[str, object]

    def event(self) -> Event:
        """The event; the same one each time (nothing random is left to decide)."""
        source = self.source or peer_address(self.peer)
        try:
            return new_event(self.action, self.outcome, at=self.at, subject=self.subject,
                             client=self.client, system=self.system, source=source,
                             request_id=self.request_id, node=self.node,
                             details=self.details, id=self.id)
        except Exception as error:  # a detail that cannot be written: the rest can
            return new_event(str(self.action), str(self.outcome), at=self.at, id=self.id,
                             node=self.node, request_id=self.request_id,
                             details={"unrecordable": type(error).__name__})
