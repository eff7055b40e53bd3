"""``audit_event(action, outcome, …)``: how the gateway says something happened.

A typed front to the ``roam.audit`` logger: the fields every event has are named
parameters, the rest are details. While a trail runs, the event goes to it directly
(``gateway.audit.handler``), and a JSON log line carrying its ``audit_id`` is written
only for the outcomes ``[audit] log_events`` names; with no trail running, the log line
is the record. Pass the ``sub``, or a user name already masked (``mask_username``);
never a secret.

Actions are dotted names, the thing then what was done to it: ``login``, ``stepup``,
``token.issue``, ``token.refresh``, ``token.revoke``, ``logout``,
``backchannel.deliver``, ``cas.ticket.issue``, ``route.resolve``, ``binding.bind``,
``operator.sessions.revoke``… (docs/operations.md lists them).
"""

from __future__ import annotations

import logging

from gateway.audit.event import Outcome
from gateway.audit.handler import AUDIT_ID, AUDIT_LOGGER, takers

__all__ = ["audit_event"]

_log = logging.getLogger(AUDIT_LOGGER)

# Names a LogRecord has already: a detail of that name is written with a trailing "_".
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", AUDIT_ID}

_LEVELS: dict[str, int] = {"success": logging.INFO, "failure": logging.INFO,
                           "denied": logging.WARNING, "locked": logging.WARNING,
                           "error": logging.ERROR}


def audit_event(action: str, outcome: Outcome, *, subject: str | None = None,
                client: str | None = None, system: str | None = None,
                source: str | None = None, **details: object) -> None:
    """Record that ``action`` happened with ``outcome``. ``source`` defaults to the
    address of the client of the request being served."""
    extras = details if _RESERVED.isdisjoint(details) else {
        f"{name}_" if name in _RESERVED else name: value for name, value in details.items()}
    trails = takers()
    event = None
    if trails:
        event = trails[0].take(action, outcome, subject=subject, client=client,
                               system=system, source=source, details=extras)
        if len(trails) == 1:
            if not trails[0].logs(outcome):
                return  # kept by the trail, and no log line asked for
        else:  # several trails run only in tests
            for other in trails[1:]:
                other.put(event)
            if not any(trail.logs(outcome) for trail in trails):
                return
    fields: dict[str, object] = {"action": action, "outcome": outcome, **extras}
    for name, value in (("subject", subject), ("client", client), ("system", system),
                        ("source", source)):
        if value is not None:
            fields[name] = value
    if event is not None:
        fields[AUDIT_ID] = event.id
    _log.log(_LEVELS[outcome], action, extra=fields)
