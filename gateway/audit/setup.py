"""The audit trail ``[audit]`` describes: its sink, and the trail writing to it."""

from __future__ import annotations

from gateway.audit.file_sink import FileSink, writable_problem
from gateway.audit.postgres import PostgresSink, dsn_problem
from gateway.audit.sink import AuditSink
from gateway.audit.trail import AuditTrail
from gateway.config import Config
from gateway.errors import ConfigError
from gateway.metrics.recorder import Metrics

__all__ = ["audit_problems", "open_sink", "open_trail"]


def _dsn(config: Config) -> str:
    section = config.settings.audit
    if section.dsn_file:
        file = config.path(section.dsn_file)
        try:
            return file.read_text("utf-8").strip()
        except OSError as error:
            raise ConfigError([f"{config.source}: audit.dsn_file: cannot read {file}: "
                               f"{error.strerror}"]) from None
    return section.dsn.get_secret_value()


def audit_problems(config: Config) -> list[str]:
    """What would keep the trail from opening, one line each. No connection is made: a
    database that is down is a readiness matter, not a configuration one."""
    section = config.settings.audit
    if section.sink == "file":
        path = config.path(section.path)
        problem = writable_problem(path)
        return [f"{config.source}: audit.path: {path}: {problem}"] if problem else []
    try:
        dsn = _dsn(config)
    except ConfigError as error:
        return error.problems
    key = "audit.dsn_file" if section.dsn_file else "audit.dsn"
    if not dsn:
        return [f"{config.source}: {key}: empty"]
    problem = dsn_problem(dsn)
    return [f"{config.source}: {key}: {problem}"] if problem else []


def open_sink(config: Config) -> AuditSink:
    """The sink ``[audit]`` names; nothing is opened until it is used. ``ConfigError``
    if its settings cannot work."""
    problems = audit_problems(config)
    if problems:
        raise ConfigError(problems)
    section = config.settings.audit
    if section.sink == "file":
        return FileSink(config.path(section.path))
    return PostgresSink(_dsn(config), schema=section.schema_name,
                        connect_timeout=section.connect_timeout)


def open_trail(config: Config, metrics: Metrics | None = None) -> AuditTrail:
    """The trail of a gateway process, writing to :func:`open_sink`'s sink and reporting
    to ``metrics``."""
    section = config.settings.audit
    return AuditTrail(open_sink(config), queue_size=section.queue_size,
                      batch_size=section.batch_size, batch_interval=section.batch_interval,
                      retention_days=section.retention_days, metrics=metrics,
                      log_events=section.log_events)
