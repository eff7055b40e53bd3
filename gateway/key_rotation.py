"""Rotating the signing keys with every gateway process on one schedule, no restart.

``roam keys rotate`` writes the next key into the shared key directory dated
``[keys] publish_ahead`` seconds ahead: published at once, signing from then on
(``gateway.keys``). Every process looks at the directory every ``reload_interval``
seconds (:class:`KeyWatcher`) and adopts what changed, so each publishes the new key
within that interval, long before it signs (``publish_ahead`` must exceed it), and all
switch to it at the same second: the time is in the file's name, not in any process's
memory. ``/jwks`` tells RPs to cache it for at most ``publish_ahead`` less that interval
(``KeysSection.jwks_max_age``), so no RP's cache lacks a key when it starts signing. The
old key stays published ``retire_after`` seconds more (its tokens' lifetime), then is
retired — left out of the JWKS by every process at once — and deleted by the next
rotation.

A directory that cannot be read, holds a bad file, or has lost every key of an algorithm
the process signs with is logged and changes nothing: the process keeps the keys it has.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from gateway.errors import KeyError_
from gateway.keyfiles import generate_key_file
from gateway.keys import KeyRing

__all__ = ["KeyWatcher", "Rotation", "rotate"]

log = logging.getLogger("roam.keys")

Listing = tuple[tuple[str, int, int], ...]  # (name, size, mtime ns) of every *.pem


def _listing(directory: Path) -> Listing:
    return tuple(sorted((p.name, (s := p.stat()).st_size, s.st_mtime_ns)
                        for p in directory.glob("*.pem")))


class KeyWatcher:
    """Re-reads the key directory into ``ring`` whenever its files change."""

    def __init__(self, ring: KeyRing, directory: Path, *, interval: float) -> None:
        self.ring = ring
        self.directory = directory
        self.interval = interval
        self._seen: Listing | None = None

    def check(self) -> bool:
        """Adopt the directory's keys if its files changed; whether the ring changed."""
        try:
            listing = _listing(self.directory)
            if listing == self._seen:
                return False
            fresh = KeyRing.from_directory(self.directory, retire_after=self.ring.retire_after)
            lost = self.ring.algs - fresh.algs
            if lost:  # a file deleted by mistake: clients of that algorithm could not sign
                raise KeyError_(f"no {', '.join(sorted(lost))} key left in the directory")
        except (OSError, KeyError_) as error:
            log.error("signing keys not reloaded: the ring in use is kept",
                      extra={"directory": str(self.directory), "cause": str(error)})
            return False
        before = {key.kid for key in self.ring.keys}
        self.ring.adopt(fresh)
        self._seen = listing
        after = {key.kid for key in fresh.keys}
        if after != before:
            log.info("signing keys reloaded", extra={
                "added": sorted(after - before), "removed": sorted(before - after)})
        return True

    async def run(self) -> None:
        """Look every ``interval`` seconds, until cancelled (the first look reads the
        directory again: it may have changed since the process loaded it)."""
        while True:
            await anyio.sleep(self.interval)
            self.check()


@dataclass(frozen=True)
class Rotation:
    added: Path  # the new key's file
    signs_from: float  # epoch seconds
    deleted: tuple[Path, ...]  # files of keys retired by now


def rotate(directory: Path, alg: str, *, publish_ahead: float, retire_after: float,
           clock: Callable[[], float] = time.time) -> Rotation:
    """Add the next ``alg`` key, signing ``publish_ahead`` seconds from now, and delete
    the files of keys already retired (``KeyError_`` if the directory holds a bad file:
    nothing is written then)."""
    now = clock()
    ring = KeyRing.from_directory(directory, retire_after=retire_after)
    retired = tuple(key.path for key in ring.keys
                    if key.path is not None and ring.retired(key, now=now))
    added = generate_key_file(directory, alg, not_before=now + publish_ahead)
    for path in retired:
        path.unlink(missing_ok=True)
    return Rotation(added, now + publish_ahead, retired)
