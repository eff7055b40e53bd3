"""What the audit trail costs: on the request path, and in its writer.

Run from the repository root::

    python -m bench.audit [--events 20000] [--rounds 5] [--dsn postgresql://…/test]

1. **The request path.** ``audit_event(...)`` as a login calls it, JSON log lines
   written to ``/dev/null`` as ``roam serve`` writes them: with no trail running (the log
   line alone, what an audited step cost before the trail), and with the trail's handler
   attached, for a success (the event built, redacted and queued; no log line, by
   ``[audit] log_events``' default) and for a failure (the event and its log line). CPU
   per event, rounds alternating, medians.
2. **The writer.** Events stored per second in PostgreSQL in batches of ``--batch``:
   chained (``PostgresSink.append``: the chain row locked, numbered, hashed, the rows
   copied in), by one writer and by four at once, against the same rows copied into a
   plain table in the same transaction shape without the chain; and into the demo's
   file. The CPU per event is this process's, making the events included (~5 µs).

A schema of its own in the ``--dsn`` database is made and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from gateway.audit.event import Event, Outcome, new_event
from gateway.audit.file_sink import FileSink
from gateway.audit.handler import AUDIT_LOGGER, AuditHandler
from gateway.audit.postgres import PostgresSink
from gateway.audit.queue import EventQueue
from gateway.audit.record import audit_event
from gateway.logs import JsonFormatter

REQUEST_CASES = ("log line, no trail", "trail, a success", "trail, a failure")


def request_path(events: int, rounds: int) -> dict[str, float]:
    """Median µs of CPU per ``audit_event`` call, by :data:`REQUEST_CASES`: the JSON log
    line alone (no trail running: what an audited step cost before the trail), a success
    with the trail (``log_events = "failures"``: the event built, redacted and queued, no
    line), a failure with the trail (the event and its log line)."""
    logger = logging.getLogger(AUDIT_LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    results: dict[str, list[float]] = {case: [] for case in REQUEST_CASES}
    with open("/dev/null", "w") as sink:
        line = logging.StreamHandler(sink)
        line.setFormatter(JsonFormatter())
        logger.addHandler(line)
        queue = EventQueue(events + 1, batch_size=events + 1)
        trail = AuditHandler(queue, node="bench:1")
        for _ in range(rounds):
            for case in REQUEST_CASES:
                attach = case != REQUEST_CASES[0]
                outcome: Outcome = "failure" if case == REQUEST_CASES[2] else "success"
                if attach:
                    trail.attach()
                start = time.process_time()
                for i in range(events):
                    audit_event("login", outcome, subject="c-0001", client="changsha-gov",
                                source="192.0.2.1", acr="L2", sid=f"s-{i}", method="password")
                results[case].append((time.process_time() - start) / events * 1e6)
                if attach:
                    trail.detach()
                    queue.discard(len(queue))
        logger.removeHandler(line)
    return {case: statistics.median(times) for case, times in results.items()}


def batch(size: int) -> list[Event]:
    return [new_event("login", "success", at=time.time(), subject=f"c-{i:04d}",
                      client="changsha-gov", source="192.0.2.1", request_id=f"{i:016x}",
                      node="bench:1", details={"acr": "L2", "sid": f"s-{i}"})
            for i in range(size)]


async def plain_inserts(dsn: str, schema: str, batches: int, size: int) -> None:
    """The same rows copied into a table without a chain: one transaction per batch."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        copy = sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(schema, "plain"))
        for _ in range(batches):
            async with conn.transaction(), conn.cursor() as cursor, cursor.copy(copy) as rows:
                for e in batch(size):
                    await rows.write_row((e.id, e.time, e.action, e.outcome, e.subject,
                                          e.client, e.source, e.request_id, e.node,
                                          psycopg.types.json.Jsonb(dict(e.details))))


async def chained(dsn: str, schema: str, batches: int, size: int) -> None:
    sink = PostgresSink(dsn, schema=schema)
    try:
        for _ in range(batches):
            await sink.append(batch(size))
    finally:
        await sink.close()


async def rate(writers: int, make: object, batches: int, size: int) -> tuple[float, float]:
    """Events per second stored by ``writers`` coroutines of ``make`` at once, and this
    process's CPU per event (µs): what a gateway process spends writing its trail."""
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(make() for _ in range(writers)))  # type: ignore[operator]
    events = writers * batches * size
    return (events / (time.perf_counter() - start),
            (time.process_time() - cpu) / events * 1e6)


async def writer(dsn: str, batches: int, size: int, rounds: int
                 ) -> dict[str, tuple[float, float]]:
    schema = f"roambench_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        await conn.execute(sql.SQL(
            "CREATE TABLE {} (id text, time timestamptz, action text, outcome text, "
            "subject text, client text, source text, request_id text, node text, "
            "details jsonb)").format(sql.Identifier(schema, "plain")))
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        await chained(dsn, schema, 1, 1)  # the tables made outside the measurement
        with tempfile.TemporaryDirectory() as directory:
            file_sink = FileSink(Path(directory) / "audit.jsonl")
            for _ in range(rounds):
                for writers in (1, 4):
                    results.setdefault(f"plain x{writers}", []).append(await rate(
                        writers, lambda: plain_inserts(dsn, schema, batches, size),
                        batches, size))
                    results.setdefault(f"chained x{writers}", []).append(await rate(
                        writers, lambda: chained(dsn, schema, batches, size), batches, size))

                async def to_file() -> None:
                    for _ in range(batches):
                        await file_sink.append(batch(size))

                results.setdefault("file x1", []).append(await rate(1, to_file, batches, size))
    finally:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(
                sql.Identifier(schema)))
    return {name: (statistics.median(v[0] for v in values),
                   statistics.median(v[1] for v in values)) for name, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    costs = request_path(args.events, args.rounds)
    print("request path, CPU per audit_event: " + ", ".join(
        f"{case} {cost:.1f} µs" for case, cost in costs.items()))
    rates = asyncio.run(writer(args.dsn, args.batches, args.batch, args.rounds))
    for writers in (1, 4):
        (plain, plain_cpu), (chain, chain_cpu) = (rates[f"plain x{writers}"],
                                                  rates[f"chained x{writers}"])
        print(f"writer, {writers} at once, batches of {args.batch}: chained {chain:,.0f} "
              f"events/s ({chain_cpu:.1f} µs CPU each here), plain inserts {plain:,.0f} "
              f"({plain_cpu:.1f} µs): {chain / plain:.2f}")
    file_rate, file_cpu = rates["file x1"]
    print(f"writer, file sink, batches of {args.batch}: {file_rate:,.0f} events/s "
          f"({file_cpu:.1f} µs CPU each here)")


if __name__ == "__main__":
    main()
