"""Audit events into the running trail's queue: from :func:`audit_event` directly, and
from any record logged on ``roam.audit``.

The ``roam.audit`` logger is the one channel for auditing, everywhere in the gateway: a
call site writes ``audit_event(...)`` (``gateway.audit.record``) or a plain
``logging.getLogger("roam.audit").info(...)``, and nothing that audits needs the trail
passed in. While a trail runs, its :class:`AuditHandler` sits on that logger:

* ``audit_event`` hands it the event's facts directly (:meth:`AuditHandler.take`), with
  no ``LogRecord`` made; they are queued as reported (a tuple), and the writer redacts
  and shapes them, a batch at a time. A JSON log line is written only for the outcomes
  the trail's ``log_events`` names (by default every outcome but success, as Keycloak
  logs its success events at DEBUG): the trail is the record, and a log line per login
  would cost more than the event;
* any other record on ``roam.audit`` becomes an event through :func:`event_of`: its
  ``action`` and ``outcome`` fields (else the message, and an outcome read from the
  level), the subject (``subject``, ``sub`` or ``user``), ``client``, ``system``,
  ``source`` (else the request's client address), the request id, and every other field
  as a detail.

Either way the request only queues, in microseconds, and nothing waits.

Tests run several gateways in one process, each serving on a thread of its own: an event
goes to the trail running on the thread it was made on, and one from any other thread to
every trail (in production there is one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Literal

from gateway.audit.event import OUTCOMES, Event, Reported, new_event, new_event_id
from gateway.audit.queue import EventQueue
from gateway.logs import current_client_address, current_peer, current_request_id, extra_fields

__all__ = ["AUDIT_ID", "AUDIT_LOGGER", "AuditHandler", "LogEvents", "event_of", "takers"]

AUDIT_LOGGER = "roam.audit"

#: The field of a log line that a trail already holds as an event: the event's id, which
#: joins the line to the stored event (and tells the handler not to queue it again).
AUDIT_ID = "audit_id"

LogEvents = Literal["all", "failures", "none"]
"""Which audited outcomes are also written as a log line while a trail keeps them."""

_SUBJECT_FIELDS = ("subject", "sub", "user")

_logger = logging.getLogger(AUDIT_LOGGER)
_attaching = threading.Lock()


def _first(fields: dict[str, object], names: tuple[str, ...]) -> object:
    for name in names:
        value = fields.get(name)
        if value not in (None, ""):
            del fields[name]
            return value
    return None


def event_of(record: logging.LogRecord, *, node: str | None = None) -> Event:
    """The audit event a ``roam.audit`` record stands for."""
    fields = extra_fields(record)
    fields.pop("request_id", None)
    action, outcome = fields.pop("action", None), fields.pop("outcome", None)
    if not isinstance(action, str) or not action:
        action = record.msg if isinstance(record.msg, str) else "event"
        if record.args:
            try:
                fields.setdefault("message", record.getMessage())
            except Exception:  # arguments that do not fit: keep the template
                fields.setdefault("message", action)
    if outcome not in OUTCOMES:
        outcome = ("error" if record.levelno >= logging.ERROR
                   else "failure" if record.levelno >= logging.WARNING else "success")
    if record.exc_info and record.exc_info[0] is not None:
        fields["exception"] = record.exc_info[0].__name__  # never the text: it may hold data
    subject = _first(fields, _SUBJECT_FIELDS)
    client = _first(fields, ("client", "client_id"))
    system = _first(fields, ("system",))
    source = _first(fields, ("source",)) or current_client_address()
    return new_event(str(action), str(outcome), at=record.created, subject=subject,
                     client=client, system=system, source=source,
                     request_id=current_request_id(), node=node, details=fields)


# The trails attached now (kept by attach/detach: an event does not walk the logger's
# handlers). One in production; several only in tests, each on a thread of its own.
_attached: tuple[AuditHandler, ...] = ()


def takers() -> tuple[AuditHandler, ...]:
    """The trails an event made on this thread goes to: the one running on this thread,
    else every one running (none: no trail runs, the log line is the only record)."""
    handlers = _attached
    if len(handlers) > 1:
        here = threading.get_ident()
        own = tuple(h for h in handlers if h.thread == here)
        return own or handlers
    return handlers


class AuditHandler(logging.Handler):
    def __init__(self, queue: EventQueue, *, node: str | None = None,
                 log_events: LogEvents = "failures") -> None:
        super().__init__(logging.NOTSET)
        self.queue = queue
        self.node = node
        self.log_events: LogEvents = log_events
        self.thread = threading.get_ident()  # the thread the trail's event loop runs on
        self.failed = 0  # records that could not be made into events

    def logs(self, outcome: str) -> bool:
        """Whether an event of ``outcome`` this trail keeps is also a log line."""
        return self.log_events == "all" or (self.log_events == "failures"
                                            and outcome != "success")

    def take(self, action: str, outcome: str, *, subject: object, client: object,
             system: object, source: object, details: Mapping[str, object]) -> Reported:
        """Queue the event ``audit_event`` reports (on the calling thread, in the request
        being served), as reported: the writer makes it an event."""
        reported = Reported(new_event_id(), time.time(), action, outcome, subject, client,
                            system, source, current_peer(), current_request_id(),
                            self.node, details)
        self.queue.put(reported)
        return reported

    def put(self, reported: Reported) -> None:
        """Queue what another trail took (tests' several gateways)."""
        self.queue.put(reported._replace(node=self.node))

    def owns(self, record: logging.LogRecord) -> bool:
        if record.thread == self.thread:
            return True
        others = _logger.handlers
        return not any(isinstance(h, AuditHandler) and h.thread == record.thread
                       for h in others)

    def emit(self, record: logging.LogRecord) -> None:
        if AUDIT_ID in record.__dict__ or not self.owns(record):
            return  # the line of an event already taken, or another trail's record
        try:
            event = event_of(record, node=self.node)
        except Exception:  # a log call must never fail
            self.failed += 1
            return
        self.queue.put(event)

    def attach(self) -> None:
        """Start receiving ``roam.audit``'s records (at INFO and above, whatever the
        logging configuration: the trail must not depend on a log level)."""
        global _attached
        if _logger.getEffectiveLevel() > logging.INFO:
            _logger.setLevel(logging.INFO)
        _logger.addHandler(self)
        with _attaching:
            _attached = (*(h for h in _attached if h is not self), self)

    def detach(self) -> None:
        global _attached
        _logger.removeHandler(self)
        with _attaching:
            _attached = tuple(h for h in _attached if h is not self)
