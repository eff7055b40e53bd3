"""The audit trail in a local file: JSON lines, for the embedded demo.

Each line is a stored event (:meth:`Link.to_json`); after pruning, the first line is
``{"anchor": {"seq": …, "hash": …}}``. Beside it, ``<file>.head`` holds the last event's
``seq`` and hash (replaced atomically after each batch), so cutting events off the end
is seen, and ``<file>.lock`` serialises writers: each batch takes an exclusive
``flock``, reads the last line to chain after it (unless the file is as this sink's
last append left it: same inode and size) and appends with one write and an ``fsync``.
Several processes may share the file on one machine; a cluster uses PostgreSQL. The
file is created mode 0600. Blocking I/O runs in worker threads.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO

import anyio.to_thread
import orjson

from gateway.audit.chain import Anchor, Link, chain
from gateway.audit.event import Event
from gateway.audit.sink import Snapshot
from gateway.errors import AuditError

__all__ = ["FileSink", "writable_problem"]

_READ_LINES = 2000  # lines read per worker-thread hop when streaming the file
_TAIL_CHUNK = 64 * 1024


def _anchor_line(anchor: Anchor) -> bytes:
    return orjson.dumps({"anchor": {"seq": anchor.seq, "hash": anchor.hash}}) + b"\n"


def _line(link: Link) -> bytes:
    """A link's line: :meth:`Link.to_json`, made from the bytes :func:`chain` hashed when
    it has them (the event serialised once; keys in another order, which JSON allows)."""
    if link.body is None:
        return orjson.dumps(link.to_json()) + b"\n"
    return b"%s,\"hash\":\"%s\"}\n" % (link.body[:-1], link.hash.encode("ascii"))


def _parse(line: bytes, number: int, path: Path) -> Link | Anchor:
    try:
        data = orjson.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        if "anchor" in data and len(data) == 1:
            anchor = data["anchor"]
            return Anchor(int(anchor["seq"]), str(anchor["hash"]))
        return Link.from_json(data)
    except (ValueError, KeyError, TypeError) as error:
        raise AuditError(f"audit file {path}: line {number} is no event ({error})") from None


class FileSink:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        # (inode, size, head) of the file after this sink's last append
        self._ours: tuple[int, int, Anchor] | None = None

    @property
    def name(self) -> str:
        return f"file {self.path}"

    # writing -----------------------------------------------------------------------------

    async def append(self, events: Sequence[Event]) -> list[Link]:
        if not events:
            return []
        return await anyio.to_thread.run_sync(self._append, list(events))

    def _append(self, events: list[Event]) -> list[Link]:
        with self._locked(fcntl.LOCK_EX):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError as error:
                raise AuditError(f"audit file {self.path}: cannot append: {error}") from None
            try:
                links = chain(self._last(fd), events)
                data = b"".join(map(_line, links))
                os.write(fd, data)
                os.fsync(fd)
                after = os.fstat(fd)
            except OSError as error:
                self._ours = None
                raise AuditError(f"audit file {self.path}: cannot append: {error}") from None
            finally:
                os.close(fd)
            head = Anchor(links[-1].seq, links[-1].hash)
            self._write_head(head)
            self._ours = (after.st_ino, after.st_size, head)
            return links

    def _write_head(self, head: Anchor) -> None:
        temporary = self.head_path.with_name(self.head_path.name + ".tmp")
        try:
            temporary.write_bytes(orjson.dumps({"seq": head.seq, "hash": head.hash}))
            os.replace(temporary, self.head_path)
        except OSError as error:
            raise AuditError(f"audit file {self.head_path}: cannot write: {error}") from None

    def _last(self, fd: int) -> Anchor:
        """What the next event follows: the last line's event or anchor (genesis if
        none). The file as this sink left it (same inode, same size): its last write's
        head, not read again."""
        ours, now = self._ours, os.fstat(fd)
        if ours is not None and ours[:2] == (now.st_ino, now.st_size):
            return ours[2]
        try:
            with open(self.path, "rb") as file:
                line = _last_line(file)
        except FileNotFoundError:
            return Anchor.genesis()
        except OSError as error:
            raise AuditError(f"audit file {self.path}: cannot read: {error}") from None
        if line is None:
            return Anchor.genesis()
        found = _parse(line, -1, self.path)
        return found if isinstance(found, Anchor) else Anchor(found.seq, found.hash)

    async def prune(self, before: datetime) -> int:
        return await anyio.to_thread.run_sync(self._prune, before)

    def _prune(self, before: datetime) -> int:
        with self._locked(fcntl.LOCK_EX):
            if not self.path.exists():
                return 0
            temporary = self.path.with_name(self.path.name + ".prune")
            removed, last = 0, None
            try:
                with open(self.path, "rb") as source:
                    lines = _numbered(source)
                    kept: list[bytes] = []
                    for number, line in lines:
                        found = _parse(line, number, self.path)
                        if isinstance(found, Link) and found.event.time < before and not kept:
                            removed, last = removed + 1, Anchor(found.seq, found.hash)
                        elif isinstance(found, Link):
                            kept.append(line)
                            break
                    if last is None:
                        return 0
                    with open(temporary, "wb") as target:
                        os.chmod(temporary, 0o600)
                        target.write(_anchor_line(last))
                        target.writelines(kept)
                        for _, line in lines:
                            target.write(line)
                        target.flush()
                        os.fsync(target.fileno())
                os.replace(temporary, self.path)
            except OSError as error:
                raise AuditError(f"audit file {self.path}: cannot prune: {error}") from None
            return removed

    async def check(self) -> None:
        problem = writable_problem(self.path)
        if problem is not None:
            raise AuditError(f"audit file {self.path}: {problem}")

    async def close(self) -> None:
        return None

    # reading -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def snapshot(self, *, since: datetime | None = None) -> AsyncIterator[Snapshot]:
        opened = await anyio.to_thread.run_sync(self._open_for_reading)
        if opened is None:
            yield Snapshot(Anchor.genesis(), self._read_head(), _empty())
            return
        file, size, head = opened
        try:
            anchor, first = await anyio.to_thread.run_sync(self._anchor_of, file)
            yield Snapshot(anchor, head, self._links(file, size, first, since))
        finally:
            file.close()

    def _open_for_reading(self) -> tuple[IO[bytes], int, Anchor | None] | None:
        """The file as it is now (size and head read together under a shared lock):
        appends after this are not read, a prune replaces the file and leaves this one."""
        with self._locked(fcntl.LOCK_SH):
            try:
                file = open(self.path, "rb")  # noqa: SIM115 - closed by snapshot()
            except FileNotFoundError:
                return None
            except OSError as error:
                raise AuditError(f"audit file {self.path}: cannot read: {error}") from None
            return file, os.fstat(file.fileno()).st_size, self._read_head()

    def _read_head(self) -> Anchor | None:
        try:
            data = orjson.loads(self.head_path.read_bytes())
            return Anchor(int(data["seq"]), str(data["hash"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise AuditError(f"audit file {self.head_path}: unreadable ({error})") from None

    def _anchor_of(self, file: IO[bytes]) -> tuple[Anchor, bytes | None]:
        line = file.readline()
        if not line:
            return Anchor.genesis(), None
        found = _parse(line, 1, self.path)
        if isinstance(found, Anchor):
            return found, None
        return Anchor.genesis(), line

    async def _links(self, file: IO[bytes], size: int, first: bytes | None,
                     since: datetime | None) -> AsyncIterator[Link]:
        number = 1 if first is not None else 2  # after an anchor, events start on line 2
        pending = [first] if first is not None else []
        while True:
            for line in pending:
                number += 1
                if not line.strip():
                    continue
                found = _parse(line, number - 1, self.path)
                if isinstance(found, Anchor):
                    raise AuditError(f"audit file {self.path}: line {number - 1}: an anchor "
                                     "in the middle of the trail")
                if since is None or found.event.time >= since:
                    yield found
            pending = await anyio.to_thread.run_sync(_read_lines, file, size)
            if not pending:
                return

    @contextlib.contextmanager
    def _locked(self, how: int) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise AuditError(f"audit file {self.path}: cannot lock: {error}") from None
        try:
            fcntl.flock(fd, how)
            yield
        finally:
            os.close(fd)  # closing releases the lock


async def _empty() -> AsyncIterator[Link]:
    return
    yield  # pragma: no cover - makes this an async generator


def _read_lines(file: IO[bytes], size: int) -> list[bytes]:
    lines: list[bytes] = []
    while len(lines) < _READ_LINES and file.tell() < size:
        line = file.readline(size - file.tell())
        if not line:
            break
        lines.append(line)
    return lines


def _numbered(file: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(file, start=1):
        if line.strip():
            yield number, line


def _last_line(file: IO[bytes]) -> bytes | None:
    """The last non-empty line, read backwards from the end in chunks."""
    end = file.seek(0, os.SEEK_END)
    position, tail = end, b""
    while position > 0:
        step = min(_TAIL_CHUNK, position)
        position -= step
        file.seek(position)
        tail = file.read(step) + tail
        stripped = tail.rstrip(b"\n")
        if b"\n" in stripped:
            return stripped.rsplit(b"\n", 1)[1]
    stripped = tail.rstrip(b"\n")
    return stripped or None


def writable_problem(path: Path) -> str | None:
    """Why ``path`` cannot be appended to (or made), if it cannot."""
    directory = path.parent
    if path.is_dir():
        return "is a directory"
    if path.exists():
        return None if os.access(path, os.W_OK) else "not writable"
    existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        return f"directory {directory} cannot be made"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"directory {existing} is not writable"
    return None
