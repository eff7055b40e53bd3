"""Registered clients written out and read back: ``roam clients export`` and ``import``.

Registered clients live in the shared store only (``gateway.oidc.client_directory``): a
Redis that loses its data (no AOF, a replica promoted before it caught up, a mistaken
``FLUSHALL``) takes every city system's registration with it, and each would have to
register and be approved again. An export is the operators' copy: every record as the
store keeps it — metadata, approval, review history, and the SHA-256 digests of the
client secrets and of the registration access token, never a secret itself — so an
import restores clients whose secrets and management tokens still work.

The file is JSON: ``{"format": FORMAT, "exported_at": …, "clients": [record, …]}``.
A digest of a random 256-bit secret does not give the secret away, but the file maps every
city system, so it is written readable by its owner only.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.oidc.client_directory import ClientDirectory
from gateway.oidc.registered import RegisteredClient

__all__ = ["FORMAT", "BackupError", "Restored", "read_backup", "restore", "write_backup"]

FORMAT = "roam-registered-clients/1"
MAX_BYTES = 64 * 1024 * 1024  # far above the province's few thousand systems


class BackupError(ValueError):
    """A file that is no export of registered clients; nothing was restored."""


def write_backup(path: Path, records: Sequence[RegisteredClient], *,
                 now: float | None = None) -> None:
    """Write ``records`` to ``path`` (mode 0600), whole or not at all: a file next to it,
    renamed over ``path`` once complete, so yesterday's copy survives a failed export."""
    body = {"format": FORMAT, "exported_at": int(time.time() if now is None else now),
            "clients": [record.model_dump(mode="json") for record in records]}
    data = json.dumps(body, ensure_ascii=False, indent=1).encode() + b"\n"
    path = path.resolve()
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:  # mkstemp made it 0600
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_backup(path: Path) -> list[RegisteredClient]:
    """The records of an export; :class:`BackupError` naming the first problem: not the
    format, a record that is none, or one whose metadata this gateway would not serve
    (an edited file, or one from a gateway configured otherwise)."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise BackupError(f"{path}: larger than {MAX_BYTES} bytes")
        body: Any = json.loads(path.read_bytes())
    except OSError as error:
        raise BackupError(f"{path}: {error.strerror or error}") from None
    except ValueError as error:  # not JSON, or not UTF-8
        raise BackupError(f"{path}: not JSON ({error})") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise BackupError(f"{path}: not an export of registered clients "
                          f"(format {FORMAT!r} expected)")
    rows = body.get("clients")
    if not isinstance(rows, list):
        raise BackupError(f"{path}: 'clients' is not a list")
    records: list[RegisteredClient] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=1):
        try:
            record = RegisteredClient.model_validate(row)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise BackupError(f"{path}: client {number}: {where}: {first['msg']}") from None
        try:  # what the gateway would serve once it is active: refused now, not later
            record.model_copy(update={"status": "active"}).config()
        except (ValueError, KeyError) as error:
            cause = str(error).splitlines()[0]
            raise BackupError(f"{path}: client {number} ({record.client_id}) is no client "
                              f"this gateway can serve: {cause}") from None
        if record.client_id in seen:
            raise BackupError(f"{path}: client {record.client_id} appears twice")
        seen.add(record.client_id)
        records.append(record)
    return records


@dataclass(frozen=True)
class Restored:
    """What an import did to each client id."""

    created: tuple[str, ...]  # absent from the store: written
    replaced: tuple[str, ...]  # present, and overwritten (``replace``)
    kept: tuple[str, ...]  # present, and left as the store has it


async def restore(directory: ClientDirectory, records: Sequence[RegisteredClient], *,
                  replace: bool = False) -> Restored:
    """Write the records the store lacks (all of them, after a loss); one it has is kept
    unless ``replace``. Each write is a compare-and-swap: a client changed by a running
    gateway while this runs is kept, not overwritten blind."""
    created: list[str] = []
    replaced: list[str] = []
    kept: list[str] = []
    for record in records:
        current = await directory.load(record.client_id)
        if current is None:
            written = await directory.save(record, None)
            (created if written else kept).append(record.client_id)
        elif replace and await directory.save(record, current.version):
            replaced.append(record.client_id)
        else:
            kept.append(record.client_id)
    return Restored(tuple(created), tuple(replaced), tuple(kept))
