"""Group commit for completions: one write carries every completion that piled up while the
previous write was in flight. Nothing waits on a timer, so a lone completion is written at once
and a burst of them costs one round trip (and one fsync) instead of one each."""

from __future__ import annotations

import asyncio
from typing import Any

from control.queue import ClaimedTask, Queue


class GroupCommitter:
    def __init__(self, queue: Queue) -> None:
        self._queue = queue
        self._pending: list[tuple[ClaimedTask, dict[str, Any] | None, asyncio.Future[bool]]] = []
        self._wake = asyncio.Event()

    async def complete(self, task: ClaimedTask, result: dict[str, Any] | None) -> bool:
        """Record the completion; True if the queue accepted it (the attempt still held)."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((task, result, fut))
        self._wake.set()
        return await fut

    async def run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                batch, self._pending = self._pending, []
                if not batch:
                    continue
                try:
                    accepted = await self._queue.complete_many([(t, r) for t, r, _ in batch])
                except Exception as exc:
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for task, _, fut in batch:
                    if not fut.done():
                        fut.set_result(task.id in accepted)
        finally:
            for _, _, fut in self._pending:
                if not fut.done():
                    fut.cancel()
