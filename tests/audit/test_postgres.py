"""The production trail in a real PostgreSQL: one chain whatever the number of writers,
pruning behind an anchor, a database that is not there."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import psycopg
import pytest

from gateway.audit.event import Event, new_event
from gateway.audit.postgres import PostgresSink, dsn_problem
from gateway.audit.verify import verify_trail
from gateway.errors import AuditError
from tests.support.redis_server import unused_port

JAN_1 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
DAY = 86400.0


def events(count: int, at: float = JAN_1, action: str = "login") -> list[Event]:
    return [new_event(action, "success", at=at + i, subject=f"c-{i:04d}",
                      details={"n": i, "fallback": False, "ratio": 0.25})
            for i in range(count)]


async def test_writers_in_parallel_keep_one_chain(postgres_dsn: str, audit_schema: str) -> None:
    """Several gateway processes, one database: each batch locks the chain row."""

    async def writer(name: str) -> None:
        sink = PostgresSink(postgres_dsn, schema=audit_schema)
        try:
            for _ in range(10):
                await sink.append(events(5, action=name))
        finally:
            await sink.close()

    async with anyio.create_task_group() as group:
        for name in ("a", "b", "c", "d"):
            group.start_soon(writer, name)
    reader = PostgresSink(postgres_dsn, schema=audit_schema)
    verdict = await verify_trail(reader)
    assert verdict.ok, verdict.problem
    assert (verdict.count, verdict.last.seq) == (200, 200)
    async with reader.snapshot() as snapshot:
        stored = [link async for link in snapshot.links]
    assert [link.seq for link in stored] == list(range(1, 201))
    assert stored[0].event.details == {"n": 0, "fallback": False, "ratio": "0.25"}


async def test_pruning_leaves_an_anchor_the_rest_verifies_from(
        postgres_dsn: str, audit_schema: str) -> None:
    sink = PostgresSink(postgres_dsn, schema=audit_schema)
    try:
        await sink.append(events(4, at=JAN_1))
        await sink.append(events(3, at=JAN_1 + 200 * DAY))
        cutoff = datetime.fromtimestamp(JAN_1 + 100 * DAY, UTC)
        assert await sink.prune(cutoff) == 4
        assert await sink.prune(cutoff) == 0
        verdict = await verify_trail(sink)
        assert verdict.ok, verdict.problem
        assert (verdict.anchor.seq, verdict.count, verdict.last.seq) == (4, 3, 7)
        since = datetime.fromtimestamp(JAN_1 + 200 * DAY + 1, UTC)
        async with sink.snapshot(since=since) as snapshot:
            assert [link.seq async for link in snapshot.links] == [6, 7]
        await sink.check()
    finally:
        await sink.close()


async def test_a_role_that_cannot_write_is_not_ready(postgres_dsn: str,
                                                      audit_schema: str) -> None:
    sink = PostgresSink(postgres_dsn, schema=audit_schema)
    await sink.append(events(1))
    await sink.close()
    role = f"{audit_schema}_reader"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT USAGE ON SCHEMA "{audit_schema}" TO "{role}"')
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{audit_schema}" TO "{role}"')
    try:
        dsn = psycopg.conninfo.make_conninfo(postgres_dsn, user=role)
        reader = PostgresSink(dsn, schema=audit_schema)
        with pytest.raises(AuditError, match="not writable"):
            await reader.check()
        await reader.close()
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


async def test_a_database_that_is_not_there_is_an_audit_error() -> None:
    dsn = f"postgresql://roam:not-this-password@127.0.0.1:{unused_port()}/test"
    sink = PostgresSink(dsn, connect_timeout=1)
    with pytest.raises(AuditError) as raised:
        await sink.append(events(1))
    assert raised.value.retry
    assert "127.0.0.1" in str(raised.value)
    assert "not-this-password" not in str(raised.value) + sink.name
    with pytest.raises(AuditError):
        await sink.check()


def test_connection_strings_are_checked_without_being_quoted() -> None:
    assert dsn_problem("postgresql://roam@db.example/roam") is None
    assert dsn_problem("host=db user=roam password=s3cret") is None
    problem = dsn_problem("host=db password='unterminated")
    assert problem is not None
    assert "unterminated" not in problem
