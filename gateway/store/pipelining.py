"""Automatic pipelining: the Redis commands of one event-loop turn go out as one pipeline.

Under load many requests reach their store call in the same turn of the event loop; sent
one by one, each pays a pool checkout, a write, a wake-up and a read of its own. Queued
for the end of the turn and sent together (as ioredis and node-redis do by default), they
share them. A lone command goes out by itself, as before. Each command keeps its own
result or error; nothing here makes two commands atomic together — every operation that
must be atomic is already one command or one Lua script.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError, NoScriptError

__all__ = ["Pipeliner"]

_Queued = tuple[tuple[Any, ...], "AsyncScript | None", "asyncio.Future[Any]"]


class Pipeliner:
    def __init__(self, client: Redis | RedisCluster) -> None:
        self._client = client
        self._queue: list[_Queued] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def command(self, *args: Any) -> Any:
        return await self._enqueue(args, None)

    async def idempotent(self, *args: Any) -> Any:
        """A command that may run twice with the same effect (a read, a ``DEL``): sent
        again, once, if the connection broke under it. After a quick Redis restart the
        pool's old connections are dead: redis-py before 8.2 sends on them, and the first
        command on each fails (8.2 replaces them as the pool hands them out). A
        script is sent again only when it says it may (:meth:`script`): whether it ran on
        the old connection is unknown."""
        return await self._sent_again_if_broken(args, None)

    async def script(self, script: AsyncScript, keys: list[str], args: list[Any], *,
                     repeatable: bool = False) -> Any:
        """EVALSHA; a script the server lost (a restart, SCRIPT FLUSH) is loaded again.
        ``repeatable``: the caller knows a second run answers as the first would have
        (``RedisStore.advance`` with a reuse window), so it is sent again, once, if the
        connection broke under it."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        if not repeatable:
            return await self._enqueue(command, script)
        return await self._sent_again_if_broken(command, script)

    async def _sent_again_if_broken(self, args: tuple[Any, ...],
                                    script: AsyncScript | None) -> Any:
        try:
            return await self._enqueue(args, script)
        except ConnectionError:
            return await self._enqueue(args, script)

    def _enqueue(self, args: tuple[Any, ...], script: AsyncScript | None) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, script, future))
        if len(self._queue) == 1:
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)  # keep a reference until it is done
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Queued]) -> None:
        try:
            if len(batch) == 1:
                results: list[Any] = [await self._one(batch[0][0], batch[0][1])]
            else:
                async with self._client.pipeline(transaction=False) as pipe:
                    for args, _, _ in batch:
                        pipe.execute_command(*args)
                    results = await pipe.execute(raise_on_error=False)
                for index, (args, script, _) in enumerate(batch):
                    if script is not None and isinstance(results[index], NoScriptError):
                        results[index] = await self._one(args, script)
        except BaseException as error:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue  # its caller gave up (cancelled); the command ran anyway
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _one(self, args: tuple[Any, ...], script: AsyncScript | None) -> Any:
        try:
            client: Any = self._client  # one node's execute_command is untyped
            return await client.execute_command(*args)
        except NoScriptError:
            if script is None:
                raise
            keys_count = int(args[2])
            rest = list(args[3:])
            return await script(keys=rest[:keys_count], args=rest[keys_count:])
