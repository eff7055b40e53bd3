"""``roam audit verify`` and ``roam audit export``, as operators run them, on a trail
someone tampered with: in PostgreSQL and in the demo's file."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from gateway.audit.chain import Link
from gateway.audit.event import new_event
from gateway.audit.file_sink import FileSink
from gateway.audit.postgres import PostgresSink
from gateway.audit.sink import AuditSink
from tests.support.audit import trail_lines
from tests.support.cli import roam

JAN_1 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
DAY = 86400.0


async def fill(sink: AuditSink) -> list[Link]:
    """Ten events, a day apart, in three batches; every third a failure."""
    stored: list[Link] = []
    for start, end in ((0, 4), (4, 7), (7, 10)):
        stored += await sink.append([
            new_event("login", "failure" if i % 3 == 0 else "success", at=JAN_1 + i * DAY,
                      subject=f"c-{i:04d}", client="changsha-gov", source="192.0.2.1")
            for i in range(start, end)])
    await sink.close()
    return stored


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def pg_env(postgres_dsn: str, audit_schema: str) -> dict[str, str]:
    return {"ROAM_AUDIT_SINK": "postgresql", "ROAM_AUDIT_DSN": postgres_dsn,
            "ROAM_AUDIT_SCHEMA_NAME": audit_schema}


def tamper(dsn: str, schema: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(sql.SQL(statement).format(t=sql.Identifier(schema, "audit_events")))


Tampering = Callable[[list[Link]], tuple[list[str], int]]
PG_TAMPERING: dict[str, tuple[list[str], int, str]] = {
    # what is done to the rows, the seq verify must name, what it must say
    "altered": (["UPDATE {t} SET outcome = 'success' WHERE seq = 4"], 4, "altered"),
    "altered time": (["UPDATE {t} SET time = time + interval '1 hour' WHERE seq = 6"], 6,
                     "altered"),
    "altered detail": (["UPDATE {t} SET details = '{{\"forged\": 1}}' WHERE seq = 2"], 2,
                       "altered"),
    "deleted": (["DELETE FROM {t} WHERE seq = 4"], 5, "missing (seq 4)"),
    "reordered": (["UPDATE {t} SET seq = -1 WHERE seq = 3", "UPDATE {t} SET seq = 3 WHERE seq = 4",
                   "UPDATE {t} SET seq = 4 WHERE seq = -1"], 3, "does not follow"),
}


@pytest.mark.parametrize("how", sorted(PG_TAMPERING))
async def test_a_tampered_row_in_postgresql_fails_verify_naming_it(
        how: str, postgres_dsn: str, audit_schema: str, pg_env: dict[str, str]) -> None:
    stored = await fill(PostgresSink(postgres_dsn, schema=audit_schema))
    intact = roam("audit", "verify", env=pg_env)
    assert intact.returncode == 0, intact.stderr
    assert "audit trail OK: 10 events (seq 1..10)" in intact.stdout
    statements, seq, reason = PG_TAMPERING[how]
    tamper(postgres_dsn, audit_schema, *statements)
    broken = roam("audit", "verify", env=pg_env)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "Traceback" not in broken.stderr
    # reordered: at seq 3 now stands the event that was seq 4
    named = stored[3] if how == "reordered" else stored[seq - 1]
    assert f"audit trail BROKEN: event seq {seq} (id {named.event.id})" in broken.stderr
    assert reason in broken.stderr


async def test_events_cut_off_the_end_fail_verify(postgres_dsn: str, audit_schema: str,
                                                  pg_env: dict[str, str]) -> None:
    await fill(PostgresSink(postgres_dsn, schema=audit_schema))
    tamper(postgres_dsn, audit_schema, "DELETE FROM {t} WHERE seq >= 9")
    broken = roam("audit", "verify", env=pg_env)
    assert broken.returncode == 1
    assert "events after seq 8 are missing (the trail's head is seq 10)" in broken.stderr


async def test_verify_is_itself_audited(postgres_dsn: str, audit_schema: str,
                                        pg_env: dict[str, str]) -> None:
    await fill(PostgresSink(postgres_dsn, schema=audit_schema))
    assert roam("audit", "verify", env=pg_env).returncode == 0
    again = roam("audit", "verify", env=pg_env)
    assert "audit trail OK: 11 events" in again.stdout  # the first verify's own event
    async with PostgresSink(postgres_dsn, schema=audit_schema).snapshot() as snapshot:
        last = [link async for link in snapshot.links][-1].event
    assert (last.action, last.outcome) == ("operator.audit.verify", "success")
    assert last.details["events"] == 11
    assert last.details["operator"]


async def test_export_since_writes_json_lines(postgres_dsn: str, audit_schema: str,
                                              pg_env: dict[str, str], tmp_path: Path) -> None:
    stored = await fill(PostgresSink(postgres_dsn, schema=audit_schema))
    exported = roam("audit", "export", "--since", "2026-01-08T00:00:00+00:00", env=pg_env)
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["seq"] for line in lines] == [8, 9, 10]
    assert lines[0] == stored[7].to_json()
    assert "exported 3 events since 2026-01-08T00:00:00+00:00" in exported.stderr
    out = tmp_path / "siem.jsonl"
    # a date alone is midnight in the machine's zone: 2026-01-09T16:00Z in Changsha
    to_file = roam("audit", "export", "--since", "2026-01-10", "--output", str(out),
                   env={**pg_env, "TZ": "Asia/Shanghai"})
    assert to_file.returncode == 0, to_file.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [10, 11]
    assert lines[1]["action"] == "operator.audit.export"  # the first export, audited
    refused = roam("audit", "export", "--since", "last tuesday", env=pg_env)
    assert refused.returncode == 2
    assert "not a date or time" in refused.stderr


def test_an_unreachable_database_is_exit_2_without_a_password(
        pg_env: dict[str, str]) -> None:
    env = {**pg_env, "ROAM_AUDIT_DSN": "postgresql://roam:hunter2@127.0.0.1:9/test",
           "ROAM_AUDIT_CONNECT_TIMEOUT": "1"}
    result = roam("audit", "verify", env=env)
    assert result.returncode == 2
    assert "audit problem: audit postgresql 127.0.0.1:9/test" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


# -- the demo's file ----------------------------------------------------------------------


def edit_lines(path: Path, change: Callable[[list[str]], list[str]]) -> None:
    path.write_text("\n".join(change(path.read_text().splitlines())) + "\n")


def altered(lines: list[str]) -> list[str]:
    event = json.loads(lines[3])
    event["outcome"] = "success"
    return [*lines[:3], json.dumps(event), *lines[4:]]


FILE_TAMPERING: dict[str, tuple[Callable[[list[str]], list[str]], int, int, str]] = {
    # what is done to the lines, the seq verify names, whose id it is, what it says
    "altered": (altered, 4, 4, "altered"),
    "deleted": (lambda lines: [*lines[:3], *lines[4:]], 5, 5, "missing (seq 4)"),
    "reordered": (lambda lines: [*lines[:2], lines[3], lines[2], *lines[4:]], 4, 4,
                  "the event(s) before it are missing (seq 3)"),
}


@pytest.mark.parametrize("how", sorted(FILE_TAMPERING))
async def test_a_tampered_line_in_the_file_fails_verify_naming_it(how: str,
                                                                   tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    env = {"ROAM_AUDIT_PATH": str(path)}
    stored = await fill(FileSink(path))
    assert roam("audit", "verify", env=env).returncode == 0
    change, seq, whose, reason = FILE_TAMPERING[how]
    edit_lines(path, change)
    broken = roam("audit", "verify", env=env)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert (f"audit trail BROKEN: event seq {seq} (id {stored[whose - 1].event.id})"
            in broken.stderr)
    assert reason in broken.stderr
    assert trail_lines(path)[-1]["action"] == "operator.audit.verify"
