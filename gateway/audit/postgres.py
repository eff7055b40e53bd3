"""The audit trail in PostgreSQL (production), through psycopg 3's asyncio connection.

Two tables in ``[audit] schema``: ``audit_events`` (one row per event, its fields as
columns, ``details`` as ``jsonb``, ``seq`` the primary key) and ``audit_chain`` (one row:
the head — the last ``seq`` and hash — and the anchor that pruning leaves). Any number
of gateway processes append to one chain: a batch is one transaction that locks the
chain row (``SELECT … FOR UPDATE``), numbers and hashes its events after the head,
copies them in (``COPY``) and moves the head. Writers therefore take turns per batch, not per event,
and the chain stays one line whatever the number of writers; ``seq`` has no gaps. A
verification reads in one ``REPEATABLE READ`` snapshot, so appends meanwhile do not
disturb it. The tables are made on first connection if they are not there (under an
advisory lock, so processes starting together do not race); the role then needs
``INSERT``, ``SELECT`` and ``DELETE`` (pruning) on ``audit_events`` and ``SELECT`` and
``UPDATE`` on ``audit_chain``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime
from typing import Any

import anyio
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from gateway.audit.chain import GENESIS, Anchor, Link, chain
from gateway.audit.event import Event
from gateway.audit.sink import Snapshot
from gateway.errors import AuditError

__all__ = ["PostgresSink", "dsn_problem"]

_SCHEMA_LOCK = 0x526F616D41756474  # pg_advisory_xact_lock key while tables are made ("RoamAudt")
_COLUMNS = ("seq", "id", "time", "action", "outcome", "subject", "client", "system",
            "source", "request_id", "node", "details", "prev", "hash")
_FETCH = 1000  # rows per round trip when reading

_TABLES = """
CREATE TABLE IF NOT EXISTS {schema}.audit_events (
    seq        bigint PRIMARY KEY,
    id         text NOT NULL,
    time       timestamptz NOT NULL,
    action     text NOT NULL,
    outcome    text NOT NULL,
    subject    text,
    client     text,
    system     text,
    source     text,
    request_id text,
    node       text,
    details    jsonb NOT NULL,
    prev       text NOT NULL,
    hash       text NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_time ON {schema}.audit_events (time);
CREATE TABLE IF NOT EXISTS {schema}.audit_chain (
    id          smallint PRIMARY KEY CHECK (id = 1),
    head_seq    bigint NOT NULL,
    head_hash   text NOT NULL,
    anchor_seq  bigint NOT NULL,
    anchor_hash text NOT NULL,
    pruned_at   timestamptz
);
INSERT INTO {schema}.audit_chain VALUES (1, 0, {genesis}, 0, {genesis}, NULL)
    ON CONFLICT (id) DO NOTHING;
"""


def dsn_problem(dsn: str) -> str | None:
    """What is wrong with ``dsn``'s syntax (a URI or ``key=value`` pairs), if anything.
    Never quotes the DSN: it may hold a password."""
    try:
        conninfo_to_dict(dsn)
    except psycopg.Error:
        return "not a PostgreSQL connection string (postgresql://… or key=value pairs)"
    return None


def _where(dsn: str) -> str:
    """host:port/dbname of ``dsn`` (libpq's defaults where it names none), for messages."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "?"
    return (f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/"
            f"{parts.get('dbname') or parts.get('user') or '-'}")


class PostgresSink:
    def __init__(self, dsn: str, *, schema: str = "public", connect_timeout: float = 5.0,
                 timeout: float = 10.0) -> None:
        self.dsn = dsn
        self.schema = schema
        self.connect_timeout = connect_timeout
        self.timeout = timeout  # one append, prune or check, connecting included
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = anyio.Lock()
        self._where = _where(dsn)

    @property
    def name(self) -> str:
        return f"postgresql {self._where} schema {self.schema}"

    def _sql(self, text: str, **parts: sql.Composable) -> sql.Composed:
        return sql.SQL(text).format(schema=sql.Identifier(self.schema),
                                    genesis=sql.Literal(GENESIS), **parts)

    # connections -------------------------------------------------------------------------

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self.dsn, autocommit=True, application_name="roam-audit",
            connect_timeout=max(1, math.ceil(self.connect_timeout)))

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._conn = None
        conn = await self._connect()
        try:
            await self._make_tables(conn)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return conn

    async def _make_tables(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """The tables, unless they are there (a role without DDL rights then works too)."""
        found = await conn.execute(
            "SELECT to_regclass(format('%%I.audit_events', %(s)s::text)) IS NOT NULL AND "
            "to_regclass(format('%%I.audit_chain', %(s)s::text)) IS NOT NULL",
            {"s": self.schema})
        row = await found.fetchone()
        if row is not None and row[0]:
            return
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            found = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                                       (self.schema,))
            if await found.fetchone() is None:
                await conn.execute(self._sql("CREATE SCHEMA {schema}"))
            await conn.execute(self._sql(_TABLES))

    @contextlib.asynccontextmanager
    async def _using(self, action: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The writer's connection for one operation, within :attr:`timeout`; any failure
        is an ``AuditError`` and a connection in doubt is dropped."""
        async with self._lock:
            try:
                with anyio.fail_after(self.timeout):
                    yield await self._connection()
            except (psycopg.Error, OSError, TimeoutError) as error:
                await self._drop()
                retry = not isinstance(error, psycopg.DataError)
                raise AuditError(f"audit {self.name}: {action} failed: {_cause(error)}",
                                 retry=retry) from None

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    # writing -----------------------------------------------------------------------------

    async def append(self, events: Sequence[Event]) -> list[Link]:
        if not events:
            return []
        copy = self._sql("COPY {schema}.audit_events ({columns}) FROM STDIN",
                         columns=_column_list())
        async with self._using("append") as conn, conn.transaction():
            head = await self._chain_row(conn, "head_seq", "head_hash")
            links = chain(Anchor(int(head[0]), str(head[1])), events)
            async with conn.cursor() as cursor, cursor.copy(copy) as rows:
                for link in links:  # COPY: half the CPU of an INSERT per row
                    await rows.write_row(_row(link))
            await conn.execute(
                self._sql("UPDATE {schema}.audit_chain SET head_seq = %s, head_hash = %s "
                          "WHERE id = 1"), (links[-1].seq, links[-1].hash))
        return links

    async def _chain_row(self, conn: psycopg.AsyncConnection[Any], *columns: str
                         ) -> tuple[Any, ...]:
        """The chain row's ``columns``, locked until the transaction ends: appends and
        prunes of every process take turns here."""
        cursor = await conn.execute(self._sql(
            "SELECT {columns} FROM {schema}.audit_chain WHERE id = 1 FOR UPDATE",
            columns=sql.SQL(", ").join(map(sql.Identifier, columns))))
        row = await cursor.fetchone()
        if row is None:
            raise AuditError(f"audit {self.name}: the audit_chain row is missing",
                             retry=False)
        return tuple(row)

    async def prune(self, before: datetime) -> int:
        async with self._using("prune") as conn, conn.transaction():
            head_seq, anchor_seq = await self._chain_row(conn, "head_seq", "anchor_seq")
            cursor = await conn.execute(
                self._sql("SELECT min(seq) FROM {schema}.audit_events WHERE time >= %s"),
                (before,))
            row = await cursor.fetchone()
            first_kept = row[0] if row is not None else None
            upto = int(head_seq) if first_kept is None else int(first_kept) - 1
            if upto <= int(anchor_seq):
                return 0
            cursor = await conn.execute(
                self._sql("SELECT hash FROM {schema}.audit_events WHERE seq = %s"), (upto,))
            last = await cursor.fetchone()
            if last is None:
                raise AuditError(f"audit {self.name}: cannot prune: event seq {upto} is "
                                 "missing (run `roam audit verify`)", retry=False)
            deleted = await conn.execute(
                self._sql("DELETE FROM {schema}.audit_events WHERE seq <= %s"), (upto,))
            await conn.execute(
                self._sql("UPDATE {schema}.audit_chain SET anchor_seq = %s, anchor_hash = %s, "
                          "pruned_at = now() WHERE id = 1"), (upto, last[0]))
            return deleted.rowcount

    async def check(self) -> None:
        async with self._using("check") as conn:
            cursor = await conn.execute(self._sql(
                "SELECT has_table_privilege(format('%%I.audit_events', %s::text), 'INSERT') "
                "AND has_table_privilege(format('%%I.audit_chain', %s::text), 'UPDATE')"),
                (self.schema, self.schema))
            row = await cursor.fetchone()
            if row is None or not row[0]:
                raise AuditError(f"audit {self.name}: not writable (INSERT on audit_events "
                                 "or UPDATE on audit_chain is not granted)")

    # reading -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def snapshot(self, *, since: datetime | None = None) -> AsyncIterator[Snapshot]:
        with self._converted("read"):
            conn = await self._connect()
        try:
            with self._converted("read"):
                await conn.set_autocommit(False)
                await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
                await conn.set_read_only(True)
                cursor = await conn.execute(self._sql(
                    "SELECT anchor_seq, anchor_hash, head_seq, head_hash "
                    "FROM {schema}.audit_chain WHERE id = 1"))
                row = await cursor.fetchone()
            if row is None:
                raise AuditError(f"audit {self.name}: the audit_chain row is missing")
            anchor, head = Anchor(int(row[0]), row[1]), Anchor(int(row[2]), row[3])
            yield Snapshot(anchor, head, self._links(conn, since))
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _links(self, conn: psycopg.AsyncConnection[Any], since: datetime | None
                     ) -> AsyncIterator[Link]:
        where = sql.SQL("WHERE time >= %s" if since is not None else "")
        query = self._sql("SELECT {columns} FROM {schema}.audit_events {where} ORDER BY seq",
                          columns=_column_list(), where=where)
        with self._converted("read"):
            async with conn.cursor(name="roam_audit_read") as cursor:
                await cursor.execute(query, (since,) if since is not None else None)
                while rows := await cursor.fetchmany(_FETCH):
                    for row in rows:
                        yield _link(row)

    @contextlib.contextmanager
    def _converted(self, action: str) -> Iterator[None]:
        try:
            yield
        except (psycopg.Error, OSError) as error:
            raise AuditError(f"audit {self.name}: {action} failed: {_cause(error)}") from None


def _column_list() -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))


def _row(link: Link) -> tuple[Any, ...]:
    event = link.event
    return (link.seq, event.id, event.time, event.action, event.outcome, event.subject,
            event.client, event.system, event.source, event.request_id, event.node,
            Jsonb(dict(event.details)), link.prev, link.hash)


def _link(row: Sequence[Any]) -> Link:
    (seq, id_, time, action, outcome, subject, client, system, source, request_id, node,
     details, prev, hashed) = row
    event = Event(id=id_, time=time, action=action, outcome=outcome, subject=subject,
                  client=client, system=system, source=source, request_id=request_id,
                  node=node, details=details if isinstance(details, dict) else {})
    return Link(int(seq), prev, hashed, event)


def _cause(error: BaseException) -> str:
    """The first line of a driver error: libpq's messages name host and port, never the
    password."""
    if isinstance(error, TimeoutError):
        return "timed out"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
