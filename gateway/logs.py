"""Structured logs: one JSON object per line, with the id of the request being served.

A value a client sent (a path, a form field, a header) can hold a line break, an ANSI
escape or a quote. Formatted into a text line it could end that line and write a forged
one (``/go/x%0a…`` did, into ``roam.audit``). :class:`JsonFormatter` renders each record
as one JSON object instead — the message and every field passed as ``extra={…}``, each
a JSON string escaped by the encoder — so whatever a value holds, a record is one line
and a value never becomes a field. Characters that JSON allows raw but that terminals or
line readers treat as control (C1 controls such as the 8-bit CSI, U+2028/U+2029, bidi
overrides) are escaped as well.

:class:`RequestIds` (pure ASGI) gives every HTTP request an id, kept in a context variable
the formatter reads, so each line written while the request is served carries it, and
answers it in ``X-Request-Id``. It also keeps the request's scope at hand, so the audit
trail can name the client's address (:func:`current_client_address`, worked out only
when asked). An incoming ``X-Request-Id`` is kept only from a load
balancer in front (``[gateway] trusted_proxies``) and only if it is a short token of safe
characters; anything else is replaced.

:func:`configure_logging` is called once when a process starts serving (``roam``, the
demo): the stdlib ``logging`` stays the API everywhere, and importing this module changes
nothing.
"""

from __future__ import annotations

import contextvars
import ipaddress
import itertools
import json
import logging
import re
import secrets
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TextIO

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.addresses import Network, client_address, scope_peer

__all__ = [
    "REQUEST_ID_HEADER",
    "JsonFormatter",
    "RequestIds",
    "RequestPeer",
    "configure_logging",
    "current_client_address",
    "current_peer",
    "current_request_id",
    "extra_fields",
    "new_request_id",
    "peer_address",
    "quiet_outbound_logs",
]

REQUEST_ID_HEADER = "x-request-id"
_HEADER = REQUEST_ID_HEADER.encode("ascii")

#: What an incoming X-Request-Id must look like to be kept (a UUID, nginx's $request_id).
_SAFE_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")

#: Longest string field written; the rest is cut (a 16 KiB header is no log line).
MAX_FIELD = 2048

_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "roam_request_id", default=None)
# The request being served and the proxies trusted in front: its client's address is
# worked out only if something asks (an audit event), never on the way through.
_REQUEST_PEER: contextvars.ContextVar[tuple[Scope, tuple[Network, ...]] | None] = (
    contextvars.ContextVar("roam_request_peer", default=None))

RequestPeer = tuple[str, tuple[str, ...], tuple[Network, ...]]
"""What a request's client address is worked out from: the peer's address, the
``X-Forwarded-For`` values (read only when a proxy is trusted) and the trusted proxies.
Small and immutable, not the request's scope: an audit event holds it until the trail's
writer takes it, and must not keep the whole request alive that long."""

# Attributes every LogRecord has: everything else on a record came in through ``extra``.
# ``color_message`` is uvicorn's copy of its message with ANSI colours: never written.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName", "color_message"}

# Valid raw in JSON, but not harmless to a terminal or to a reader splitting lines.
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


_ID_START = secrets.randbits(64)  # where this process's ids start: processes never overlap
_ID_COUNT = itertools.count()


def new_request_id() -> str:
    """16 hex digits, unique within the process and (from a random start) across
    processes. Not a secret, so no system call per request: a counter."""
    return f"{(_ID_START + next(_ID_COUNT)) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def current_request_id() -> str | None:
    """The id of the request being served in this context, if any."""
    return _REQUEST_ID.get()


def current_client_address() -> str | None:
    """The client address of the request being served in this context (behind
    ``[gateway] trusted_proxies``, the one they forwarded), if any."""
    return peer_address(current_peer())


def current_peer() -> RequestPeer | None:
    """The client of the request being served in this context, to work its address out
    later (:func:`peer_address`): the audit trail does, off the request's path."""
    served = _REQUEST_PEER.get()
    if served is None:
        return None
    scope, trusted = served
    return (*scope_peer(scope, trusted), trusted)


def peer_address(peer: RequestPeer | None) -> str | None:
    """The client address of a :func:`current_peer`, if any."""
    if peer is None:
        return None
    return client_address(*peer) or None


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a log call passed as ``extra={…}``."""
    return {key: value for key, value in record.__dict__.items()
            if key not in _RECORD_ATTRIBUTES}


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _dumps(obj: dict[str, Any]) -> str:
    try:
        text = orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
    except TypeError:  # lone surrogates, integers past 64 bits: the slower encoder takes all
        text = json.dumps(obj, default=str, ensure_ascii=True)
    return _UNSAFE.sub(_escape, text)


def _field(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_FIELD:
        return value[:MAX_FIELD] + "…"
    return value


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: ``time`` (local, with offset), ``level``, ``logger``,
    ``request_id`` (while a request is served), ``msg``, every ``extra`` field, and
    ``exc`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            return _dumps(self._fields(record))
        except Exception:  # a log call must never fail, nor print a traceback
            return _dumps({"time": self._time(record), "level": record.levelname,
                           "logger": record.name, "msg": "unformattable log record"})

    def _time(self, record: logging.LogRecord) -> str:
        return datetime.fromtimestamp(record.created).astimezone().isoformat(
            timespec="milliseconds")

    def _fields(self, record: logging.LogRecord) -> dict[str, Any]:
        out: dict[str, Any] = {"time": self._time(record), "level": record.levelname,
                               "logger": record.name}
        request_id = record.__dict__.get("request_id") or _REQUEST_ID.get()
        if request_id:
            out["request_id"] = request_id
        try:
            out["msg"] = _field(record.getMessage())
        except Exception:  # arguments that do not fit the message
            out["msg"] = _field(f"{record.msg!r} % {record.args!r}")
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in out:
                out[key] = _field(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return out


def configure_logging(level: int | str = logging.INFO, *, stream: TextIO | None = None
                      ) -> logging.Handler:
    """Every record, uvicorn's and Python warnings included, to ``stream`` (stderr) as
    JSON lines: the root logger gets one handler, uvicorn's loggers hand theirs up to it.
    Returns the handler."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
    logging.captureWarnings(True)
    quiet_outbound_logs()
    return handler


def quiet_outbound_logs() -> None:
    """httpx logs every request's full URL at INFO, and some platforms take secrets in
    the query (WeChat's AppSecret and access token): its loggers keep only warnings."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _incoming(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == _HEADER:
            return value.decode("ascii") if _SAFE_ID.fullmatch(value) else None
    return None


class RequestIds:
    """Pure ASGI middleware: a request id for each HTTP request, set for the logs of
    everything that serves it and sent back in ``X-Request-Id`` (unless a proxied system
    answered with one of its own). ``headers`` go on every answer that lacks them too
    (``Strict-Transport-Security`` when the issuer is https): this is the one place that
    sees every answer, the proxy's included, so they cost no wrapper of their own."""

    def __init__(self, app: ASGIApp, *, trusted: Iterable[str] = (),
                 headers: Iterable[tuple[str, str]] = ()) -> None:
        self.app = app
        # Only a load balancer in front (``[gateway] trusted_proxies``) names a request: a
        # client could otherwise put its lines under another request's id.
        self.trusted = tuple(ipaddress.ip_network(n, strict=False) for n in trusted)
        self.headers = tuple((name.lower().encode("latin-1"), value.encode("latin-1"))
                             for name, value in headers)

    def _from_trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not self.trusted or not client:
            return False
        try:
            peer = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(peer in network for network in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ((_incoming(scope["headers"]) if self._from_trusted(scope) else None)
                      or new_request_id())
        added = ((_HEADER, request_id.encode("ascii")), *self.headers)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                present = {name.lower() for name, _ in headers}
                missing = [pair for pair in added if pair[0] not in present]
                if missing:
                    message = {**message, "headers": [*headers, *missing]}
            await send(message)

        token = _REQUEST_ID.set(request_id)
        peer = _REQUEST_PEER.set((scope, self.trusted))
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _REQUEST_PEER.reset(peer)
            _REQUEST_ID.reset(token)
