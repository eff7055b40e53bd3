"""The app's own task group, for work that must not hold up a response.

Back-channel logout runs here: the citizen's logout page returns at once while RPs are
notified (and retried) behind it. The lifespan owns the group, so shutdown cancels it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import anyio.abc

__all__ = ["Background"]


class Background:
    def __init__(self) -> None:
        self._group: anyio.abc.TaskGroup | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                yield
            finally:
                self._group = None
                group.cancel_scope.cancel()

    @property
    def group(self) -> anyio.abc.TaskGroup:
        if self._group is None:
            raise RuntimeError("background work runs only inside the app's lifespan")
        return self._group
