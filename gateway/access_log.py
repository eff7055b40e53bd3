"""uvicorn's access log without query strings, with its parts as fields of their own.

Query strings carry single-use secrets on some of the gateway's paths (CAS service tickets
at ``/cas/serviceValidate``, parked-request ids at ``/authorize/resume``, tickets at
``/ticket/…``), and the rule is that no secret reaches a log. uvicorn logs
``'%s - "%s %s HTTP/%s" %d'`` with the path and query as one argument; this filter cuts
the query off before the record is formatted, keeping method, path and status, and puts
them on the record as ``client``, ``method``, ``path``, ``http_version`` and ``status``,
which the JSON log line (``gateway.logs``) writes as fields next to the request id.
"""

from __future__ import annotations

import logging

__all__ = ["ACCESS_LOGGER", "WithoutQuery", "install"]

ACCESS_LOGGER = "uvicorn.access"


class WithoutQuery(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, sep, _ = args[2].partition("?")
            if sep:
                path = f"{path}?…"
                record.args = args = (*args[:2], path, *args[3:])
            if len(args) == 5:
                record.client, record.method, record.path, record.http_version, \
                    record.status = args
        return True


def install() -> None:
    """Attach the filter to uvicorn's access logger (idempotent)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, WithoutQuery) for f in logger.filters):
        logger.addFilter(WithoutQuery())
