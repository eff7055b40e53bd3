"""The production store: any number of gateway processes share one Redis.

Layout, chosen so every command and script touches exactly one key (Redis Cluster safe):

* a record is a hash at ``{prefix}{{kind:id}}`` with fields ``p`` (payload JSON),
  ``g`` (its grant id, if any), ``c`` (set once consumed), ``v`` (its version, if any),
  ``h`` (replaced versions, newest first, newline-separated) and, for an advance's reuse
  window, ``r``, ``t`` and ``m`` (the version it replaced, until when in epoch
  milliseconds, the memo); it always carries a TTL;
* a counter (``incr``) is a hash at the same key as a record would be, with field ``n``
  and the TTL its first increment set;
* a grant index is a set at ``{prefix}grant:{{grant_id}}`` of record keys; its TTL is
  raised, never lowered, to cover its longest-lived member.

Single commands go through ``Pipeliner``: those issued in one event-loop turn share one
round trip. Record ids are secrets (codes, tickets, token ids), so no error message
names them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.errors import StoreError
from gateway.store.base import (
    VERSION_HISTORY,
    Advance,
    Advanced,
    Counted,
    Versioned,
    check_delta,
    check_kind,
    check_reuse,
    check_ttl,
    check_version,
    dump_payload,
    grant_of,
    load_payload,
)
from gateway.store.breaker import Breaker
from gateway.store.pipelining import Pipeliner

__all__ = ["RedisStore"]

# Replace, never merge: DEL first so a re-upserted record loses any old consumed flag.
_UPSERT = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'p', ARGV[1])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'g', ARGV[3])
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'v', ARGV[4])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# Compare-and-swap of the version; the replaced one goes to the front of the history,
# which keeps at most ARGV[3] entries. With ARGV[5] (until when, epoch ms) not 0 the
# advance also keeps 'r' (the version it replaced), 't' (ARGV[5]) and 'm' (the memo
# ARGV[4]); ARGV[6] is now (epoch ms).
# {payload, 1}: advanced; {payload, 3, memo}: ARGV[1] is 'r' and 't' is not past;
# {payload, 2}: ARGV[1] is in the history; {payload, 0}: neither; nil: no such record.
_ADVANCE = """
local fields = redis.call('HMGET', KEYS[1], 'p', 'v', 'h', 'r', 't', 'm')
if not fields[1] then
  return false
end
if fields[2] ~= ARGV[1] then
  if fields[4] == ARGV[1] and (tonumber(fields[5]) or 0) > tonumber(ARGV[6]) then
    return {fields[1], 3, fields[6]}
  end
  if fields[3] then
    for entry in string.gmatch(fields[3], '[^\\n]+') do
      if entry == ARGV[1] then
        return {fields[1], 2}
      end
    end
  end
  return {fields[1], 0}
end
local history = ARGV[1]
local kept = 1
local limit = tonumber(ARGV[3])
if fields[3] then
  for entry in string.gmatch(fields[3], '[^\\n]+') do
    if kept >= limit then
      break
    end
    history = history .. '\\n' .. entry
    kept = kept + 1
  end
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'h', history)
if ARGV[5] ~= '0' then
  redis.call('HSET', KEYS[1], 'r', ARGV[1], 't', ARGV[5], 'm', ARGV[4])
else
  redis.call('HDEL', KEYS[1], 'r', 't', 'm')
end
return {fields[1], 1}
"""

# Upsert only over a live record: the check and the write in one script, so a record
# removed (revoked) before it cannot be brought back. 0: absent, nothing written.
_REPLACE = """
if redis.call('HEXISTS', KEYS[1], 'p') == 0 then
  return 0
end
""" + _UPSERT

# Upsert only if the version is ARGV[5] (ARGV[6] '1': only if there is no record), in one
# script. A counter at the key holds no 'p': it counts as no record. 0: nothing written.
_SWAP = """
local held = redis.call('HMGET', KEYS[1], 'p', 'v')
if ARGV[6] == '1' then
  if held[1] then
    return 0
  end
elseif not held[1] or (held[2] or '') ~= ARGV[5] then
  return 0
end
""" + _UPSERT

_OUTCOMES: dict[int, Advance] = {0: "unknown", 1: "advanced", 2: "retired", 3: "repeated"}

# PTTL is -1 for a set SADD just created (no expiry yet) and -2 for a missing key; both
# are below any real TTL, so one comparison covers them.
_INDEX_MARGIN_MS = 5000

_INDEX = """
redis.call('SADD', KEYS[1], ARGV[1])
local want = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < want then
  redis.call('PEXPIRE', KEYS[1], want)
end
return 1
"""

# Check and set in one script: HSETNX alone would recreate an expired key without a TTL.
_CONSUME = """
local payload = redis.call('HGET', KEYS[1], 'p')
if not payload then
  return false
end
return {payload, redis.call('HSETNX', KEYS[1], 'c', '1')}
"""

# A counter in a fixed window: the increment that creates the key sets its TTL (ms), later
# ones leave it; a delta of 0 or less never creates one. {value, ms left}.
_INCR = """
local by = tonumber(ARGV[1])
if by <= 0 and redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 0}
end
local value = redis.call('HINCRBY', KEYS[1], 'n', by)
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  left = tonumber(ARGV[2])
  redis.call('PEXPIRE', KEYS[1], left)
end
return {value, left}
"""

# Delete only if the record still belongs to the grant: it may have been re-upserted
# under another grant (or none) since it was indexed.
_REVOKE_ONE = """
if redis.call('HGET', KEYS[1], 'g') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisStore:
    """Shared, Cluster-ready store; scripts make consume and index updates atomic."""

    def __init__(self, client: Redis | RedisCluster, *, prefix: str = "roam:",
                 breaker: Breaker | None = None,
                 clock: Callable[[], float] = time.time, secrets: Sequence[str] = (),
                 also_close: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
        self._client = client
        pool = getattr(client, "connection_pool", None)  # one node: its URL's password
        password = pool.connection_kwargs.get("password") if pool is not None else None
        # what no error message may show (a client's errors may quote its settings)
        self._secrets = tuple(s for s in (*secrets, password) if isinstance(s, str) and s)
        self._also_close = tuple(also_close)
        self._clock = clock  # wall time: every gateway process compares reuse windows by it
        self._prefix = prefix
        self._breaker = breaker if breaker is not None else Breaker(0)
        self._upsert = client.register_script(_UPSERT)
        self._index = client.register_script(_INDEX)
        self._consume = client.register_script(_CONSUME)
        self._revoke_one = client.register_script(_REVOKE_ONE)
        self._advance = client.register_script(_ADVANCE)
        self._replace = client.register_script(_REPLACE)
        self._incr = client.register_script(_INCR)
        self._swap = client.register_script(_SWAP)
        self._pipeliner = Pipeliner(client)

    @property
    def breaker(self) -> Breaker:
        """The circuit breaker its calls go through (for its metric)."""
        return self._breaker

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "roam:", timeout: float = 1.0,
                 connect_timeout: float = 1.0, circuit_open: float = 2.0,
                 clock: Callable[[], float] = time.time) -> RedisStore:
        """Open a pool; a command's answer may take ``timeout`` seconds and a connection
        ``connect_timeout`` (``[store]``), so a frozen or dead Redis fails a request
        quickly instead of holding it; after a timeout, calls fail at once for
        ``circuit_open`` seconds (``gateway.store.breaker``). The URL's query string
        (``?socket_timeout=…``) overrides the timeouts.
        """
        try:
            client = Redis.from_url(url, socket_connect_timeout=connect_timeout,
                                    socket_timeout=timeout)
        except ValueError:
            # from None: the original message may quote the URL, password included.
            raise StoreError(
                "invalid redis URL (expected redis://, rediss:// or unix://)"
            ) from None
        return cls(client, prefix=prefix, breaker=Breaker(circuit_open), clock=clock)

    async def upsert(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int, *,
                     version: str = "") -> None:
        await self._write(self._upsert, "upsert", kind, id, payload, ttl, version)

    async def _write(self, script: AsyncScript, action: str, kind: str, id: str,
                     payload: Mapping[str, Any], ttl: int, version: str,
                     *extra: str) -> object:
        key = self._record_key(kind, id)
        check_ttl(ttl)
        check_version(version, empty_ok=True)
        text = dump_payload(payload)
        grant_id = grant_of(payload)
        with self._converted(action):
            if grant_id is not None:
                # Index before writing: a failure in between leaves a dangling index entry
                # (harmless), never a record that revocation cannot reach.
                # The index outlives its member by a margin: it is written first, so without
                # one the record could outlive the set by the milliseconds between the two.
                await self._pipeliner.script(self._index, [self._grant_key(grant_id)],
                                             [key, ttl * 1000 + _INDEX_MARGIN_MS])
            return await self._pipeliner.script(script, [key],
                                                [text, ttl, grant_id or "", version, *extra])

    async def find(self, kind: str, id: str) -> dict[str, Any] | None:
        raw = await self.find_text(kind, id)
        return None if raw is None else _load(raw)

    async def find_text(self, kind: str, id: str) -> str | bytes | None:
        key = self._record_key(kind, id)
        with self._converted("find"):
            raw = await self._pipeliner.idempotent("HGET", key, "p")
        if raw is not None and not isinstance(raw, bytes | str):
            raise StoreError("redis returned a record that is not JSON")
        return raw

    async def consume(self, kind: str, id: str) -> tuple[dict[str, Any], bool] | None:
        key = self._record_key(kind, id)
        with self._converted("consume"):
            reply = await self._pipeliner.script(self._consume, [key], [])
        if reply is None:
            return None
        if not isinstance(reply, list) or len(reply) != 2:
            raise StoreError("redis consume returned an unexpected reply")
        raw, first = reply
        return _load(raw), first == 1

    async def find_versioned(self, kind: str, id: str) -> Versioned | None:
        key = self._record_key(kind, id)
        with self._converted("find"):
            raw, version, history = await self._pipeliner.idempotent("HMGET", key, "p", "v", "h")
        if raw is None:
            return None
        previous = tuple(_text(history).split("\n")) if history else ()
        return Versioned(_load(raw), _text(version), previous)

    async def advance(self, kind: str, id: str, expected: str, new: str, *,
                      memo: str = "", reuse_for: float = 0) -> Advanced | None:
        key = self._record_key(kind, id)
        check_version(expected)
        check_version(new)
        check_reuse(memo, reuse_for)
        now = int(self._clock() * 1000)
        until = now + math.ceil(reuse_for * 1000) if reuse_for > 0 else 0
        args = [expected, new, VERSION_HISTORY, memo, until, now]
        with self._converted("advance"):
            # With a reuse window the call is safe to send twice: if the first ran, the
            # second is "repeated" with this call's own memo.
            reply = await self._pipeliner.script(self._advance, [key], args,
                                                 repeatable=reuse_for > 0)
        if reply is None:
            return None
        if not isinstance(reply, list) or len(reply) not in (2, 3) \
                or reply[1] not in _OUTCOMES:
            raise StoreError("redis advance returned an unexpected reply")
        memo_back = _text(reply[2]) if len(reply) == 3 else ""
        return Advanced(_load(reply[0]), _OUTCOMES[reply[1]], memo_back)

    async def replace(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int, *,
                      version: str = "") -> bool:
        return await self._write(self._replace, "replace", kind, id, payload, ttl, version) == 1

    async def swap(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int, *,
                   expected: str | None, version: str) -> bool:
        check_version(version)
        if expected is not None:
            check_version(expected, empty_ok=True)
        return await self._write(self._swap, "swap", kind, id, payload, ttl, version,
                                 expected or "", "1" if expected is None else "0") == 1

    async def incr(self, kind: str, id: str, ttl: int, *, by: int = 1) -> Counted:
        key = self._record_key(kind, id)
        check_ttl(ttl)
        check_delta(by)
        with self._converted("incr"):
            reply = await self._pipeliner.script(self._incr, [key], [by, ttl * 1000])
        if not isinstance(reply, list) or len(reply) != 2 or not all(
                isinstance(n, int) for n in reply):
            raise StoreError("redis incr returned an unexpected reply")
        value, left_ms = reply
        return Counted(value, math.ceil(left_ms / 1000))

    async def destroy(self, kind: str, id: str) -> None:
        key = self._record_key(kind, id)
        with self._converted("destroy"):
            await self._pipeliner.idempotent("DEL", key)

    async def find_by_grant(self, grant_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        with self._converted("find_by_grant"):
            members = sorted(await self._client.smembers(self._grant_key(grant_id)))
            if not members:
                return []
            async with self._client.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.hmget(member, "p", "g")
                rows = await pipe.execute()
        found = []
        for member, (payload, owner) in zip(members, rows, strict=True):
            if payload is None or _text(owner) != grant_id:
                continue  # expired, or re-upserted into another grant since
            kind, _, id = _text(member)[len(self._prefix) + 1 : -1].partition(":")
            found.append((kind, id, _load(payload)))
        return found

    async def revoke_by_grant(self, grant_id: str) -> int:
        grant_key = self._grant_key(grant_id)
        with self._converted("revoke"):
            members = list(await self._client.smembers(grant_key))
            if not members:
                return 0
            # One single-key script per member (members hash to different slots: on a
            # Cluster each goes to its own node), sent in one turn so they share round
            # trips; then SREM only what was read, so a record indexed meanwhile stays
            # revocable.
            removed = await asyncio.gather(*(
                self._pipeliner.script(self._revoke_one, [_text(member)], [grant_id])
                for member in members))
            await self._pipeliner.command("SREM", grant_key, *members)
        return sum(int(n) for n in removed)

    async def forget(self, grant_id: str, kind: str, id: str) -> None:
        with self._converted("forget"):
            await self._pipeliner.idempotent("SREM", self._grant_key(grant_id),
                                             self._record_key(kind, id))

    async def close(self) -> None:
        with self._converted("close"):
            await self._client.aclose()
            for close in self._also_close:
                await close()

    def _record_key(self, kind: str, id: str) -> str:
        return f"{self._prefix}{{{check_kind(kind)}:{id}}}"

    def _grant_key(self, grant_id: str) -> str:
        return f"{self._prefix}grant:{{{grant_id}}}"

    @contextmanager
    def _converted(self, action: str) -> Iterator[None]:
        """Callers see StoreError only; redis-py's own exceptions stop here. A timeout
        opens the breaker; while it is open nothing is sent."""
        self._breaker.check()
        try:
            yield
        except (RedisError, RedisClusterException, OSError) as exc:
            if isinstance(exc, RedisTimeoutError):
                self._breaker.timed_out()
            raise StoreError(f"redis {action} failed: {self._scrub(exc)}") from exc
        except RuntimeError as exc:
            # uvloop's word for a connection a killed node closed under redis-py's writer
            # (seen on a Cluster master killed mid-traffic): a store failure, not a bug
            if _CLOSED_TRANSPORT not in str(exc):
                raise
            raise StoreError(f"redis {action} failed: the connection closed") from exc
        self._breaker.answered()

    def _scrub(self, exc: BaseException) -> str:
        message = f"{type(exc).__name__}: {exc}"
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message


_CLOSED_TRANSPORT = "the handler is closed"


def _load(raw: object) -> dict[str, Any]:
    if not isinstance(raw, bytes | str):
        raise StoreError("redis returned a record that is not JSON")
    return load_payload(raw)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
