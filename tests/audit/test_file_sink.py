"""The demo's trail file: batches appended and chained, several writers at once, pruning
behind an anchor, a head beside it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from gateway.audit.event import Event, new_event
from gateway.audit.file_sink import FileSink
from gateway.audit.verify import verify_trail
from gateway.errors import AuditError
from tests.support.audit import trail_lines

JAN_1 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
DAY = 86400.0


def events(count: int, at: float = JAN_1, action: str = "login") -> list[Event]:
    return [new_event(action, "success", at=at + i, subject=f"c-{i:04d}") for i in range(count)]


async def test_batches_are_chained_after_each_other(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "audit.jsonl")
    first = await sink.append(events(3))
    second = await sink.append(events(2))
    assert [link.seq for link in first + second] == [1, 2, 3, 4, 5]
    assert second[0].prev == first[-1].hash
    verdict = await verify_trail(sink)
    assert verdict.ok
    assert verdict.count == 5
    assert json.loads((tmp_path / "audit.jsonl.head").read_text()) == {
        "seq": 5, "hash": second[-1].hash}
    assert (tmp_path / "audit.jsonl").stat().st_mode & 0o777 == 0o600


async def test_writers_in_parallel_keep_one_chain(tmp_path: Path) -> None:
    """Each batch locks the file, reads the last line and appends after it."""
    path = tmp_path / "audit.jsonl"

    async def writer(name: str) -> None:
        sink = FileSink(path)  # a sink (and a lock file descriptor) of its own
        for _ in range(10):
            await sink.append(events(5, action=name))

    async with anyio.create_task_group() as group:
        for name in ("a", "b", "c", "d"):
            group.start_soon(writer, name)
    verdict = await verify_trail(FileSink(path))
    assert verdict.ok, verdict.problem
    assert verdict.count == 200
    assert [line["seq"] for line in trail_lines(path)] == list(range(1, 201))


async def test_a_writer_chains_after_what_others_wrote_since_its_last_batch(
        tmp_path: Path) -> None:
    """A sink does not read back a file as it left it; one another writer appended to,
    or pruned (a new file), it reads again."""
    path = tmp_path / "audit.jsonl"
    ours, theirs = FileSink(path), FileSink(path)
    await ours.append(events(2, at=JAN_1))
    await ours.append(events(2, at=JAN_1 + 10))
    await theirs.append(events(3, at=JAN_1 + 20))
    after_theirs = await ours.append(events(1, at=JAN_1 + 30))
    assert after_theirs[0].seq == 8
    assert await theirs.prune(datetime.fromtimestamp(JAN_1 + 25, UTC)) == 7
    after_prune = await ours.append(events(1, at=JAN_1 + 40))
    assert after_prune[0].seq == 9
    assert after_prune[0].prev == after_theirs[0].hash
    verdict = await verify_trail(FileSink(path))
    assert verdict.ok, verdict.problem
    assert (verdict.anchor.seq, verdict.count) == (7, 2)


async def test_pruning_leaves_an_anchor_the_rest_verifies_from(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = FileSink(path)
    await sink.append(events(4, at=JAN_1))
    await sink.append(events(3, at=JAN_1 + 200 * DAY))
    cutoff = datetime.fromtimestamp(JAN_1 + 100 * DAY, UTC)
    assert await sink.prune(cutoff) == 4
    assert await sink.prune(cutoff) == 0
    first_line = json.loads(path.read_text().splitlines()[0])
    assert first_line["anchor"]["seq"] == 4
    verdict = await verify_trail(sink)
    assert verdict.ok, verdict.problem
    assert (verdict.anchor.seq, verdict.count, verdict.last.seq) == (4, 3, 7)
    more = await sink.append(events(1, at=JAN_1 + 201 * DAY))
    assert more[0].seq == 8
    assert (await verify_trail(sink)).ok


async def test_export_reads_from_a_time_on(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "audit.jsonl")
    await sink.append(events(5, at=JAN_1))
    since = datetime.fromtimestamp(JAN_1 + 3, UTC)
    async with sink.snapshot(since=since) as snapshot:
        seqs = [link.seq async for link in snapshot.links]
    assert seqs == [4, 5]


async def test_a_broken_last_line_stops_appends_loudly(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = FileSink(path)
    await sink.append(events(2))
    with path.open("a") as file:
        file.write('{"seq": 3, "half a line')
    with pytest.raises(AuditError, match="is no event"):
        await sink.append(events(1))


async def test_check_says_when_the_file_cannot_be_written(tmp_path: Path) -> None:
    await FileSink(tmp_path / "new" / "audit.jsonl").check()  # a directory it can make
    (tmp_path / "blocked").write_text("a file where the directory should be")
    blocked = FileSink(tmp_path / "blocked" / "audit.jsonl")
    with pytest.raises(AuditError, match="cannot be made"):
        await blocked.check()
    with pytest.raises(AuditError, match="cannot lock"):
        await blocked.append(events(1))
