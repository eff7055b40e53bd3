"""``roam.audit`` log records → audit events, queued.

The ``roam.audit`` logger is the one API for auditing, everywhere in the gateway: a call
site writes ``audit_event(...)`` (``gateway.audit.record``) or a plain
``logging.getLogger("roam.audit").info(...)``, and the JSON log line and the trail's
event come from that one call, so they cannot disagree, and nothing that audits needs
the trail passed in. :class:`AuditHandler`, attached while a trail runs, turns each
record into an :class:`~gateway.audit.event.Event`: its ``action`` and ``outcome``
fields (else the message, and an outcome read from the level), the subject (``subject``,
``sub`` or ``user``), ``client``, ``system``, ``source`` (else the request's client
address), the request id, and every other field as a detail. It only queues: building
an event costs microseconds and never waits.

Tests run several gateways in one process, each serving on a thread of its own: a
record goes to the trail running on the thread it was made on, and a record from any
other thread to every trail (in production there is one).
"""

from __future__ import annotations

import logging
import threading

from gateway.audit.event import OUTCOMES, Event, new_event
from gateway.audit.queue import EventQueue
from gateway.logs import current_client_address, current_request_id, extra_fields

__all__ = ["AUDIT_LOGGER", "AuditHandler", "event_of"]

AUDIT_LOGGER = "roam.audit"

_SUBJECT_FIELDS = ("subject", "sub", "user")


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


class AuditHandler(logging.Handler):
    def __init__(self, queue: EventQueue, *, node: str | None = None) -> None:
        super().__init__(logging.NOTSET)
        self.queue = queue
        self.node = node
        self.thread = threading.get_ident()  # the thread the trail's event loop runs on
        self.failed = 0  # records that could not be made into events

    def owns(self, record: logging.LogRecord) -> bool:
        if record.thread == self.thread:
            return True
        others = logging.getLogger(AUDIT_LOGGER).handlers
        return not any(isinstance(h, AuditHandler) and h.thread == record.thread
                       for h in others)

    def emit(self, record: logging.LogRecord) -> None:
        if not self.owns(record):
            return
        try:
            event = event_of(record, node=self.node)
        except Exception:  # a log call must never fail
            self.failed += 1
            return
        self.queue.put(event)

    def attach(self) -> None:
        """Start receiving ``roam.audit``'s records (at INFO and above, whatever the
        logging configuration: the trail must not depend on a log level)."""
        logger = logging.getLogger(AUDIT_LOGGER)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(self)

    def detach(self) -> None:
        logging.getLogger(AUDIT_LOGGER).removeHandler(self)
