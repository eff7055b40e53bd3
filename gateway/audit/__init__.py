"""The audit trail: every authentication, token, logout, ticket, routing decision,
binding and operator action, kept tamper-evident (a hash chain) for months.

``record`` (``audit_event``) is how the gateway reports an event, on the ``roam.audit``
logger; ``handler`` turns those records into ``event``s (``redact`` keeps secrets and
personal numbers out); ``queue`` holds them and ``trail`` writes them in batches off
the request path to a ``sink``: ``file_sink`` (the demo) or ``postgres`` (production),
both chaining them with ``chain``; ``verify`` walks a stored trail. ``setup`` opens
what ``[audit]`` describes.
docs/operations.md tells operators how to run, verify and export it.
"""

from gateway.audit.chain import GENESIS, Anchor, ChainCheck, Link, Problem, canonical, digest
from gateway.audit.event import OUTCOMES, Event, Outcome, format_time, new_event, parse_time
from gateway.audit.file_sink import FileSink
from gateway.audit.handler import AUDIT_LOGGER, AuditHandler, event_of
from gateway.audit.postgres import PostgresSink
from gateway.audit.queue import EventQueue
from gateway.audit.record import audit_event
from gateway.audit.redact import redact_fields, redact_text
from gateway.audit.setup import audit_problems, open_sink, open_trail
from gateway.audit.sink import AuditSink, Snapshot
from gateway.audit.trail import AuditStats, AuditTrail, node_name
from gateway.audit.verify import Verdict, verify_trail

__all__ = [
    "AUDIT_LOGGER",
    "GENESIS",
    "OUTCOMES",
    "Anchor",
    "AuditHandler",
    "AuditSink",
    "AuditStats",
    "AuditTrail",
    "ChainCheck",
    "Event",
    "EventQueue",
    "FileSink",
    "Link",
    "Outcome",
    "PostgresSink",
    "Problem",
    "Snapshot",
    "Verdict",
    "audit_event",
    "audit_problems",
    "canonical",
    "digest",
    "event_of",
    "format_time",
    "new_event",
    "node_name",
    "open_sink",
    "open_trail",
    "parse_time",
    "redact_fields",
    "redact_text",
    "verify_trail",
]
