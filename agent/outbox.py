"""What the agent has to tell the queue about its tasks, kept until the database takes it.

Completions are group-committed: one statement carries every completion that piled up while
the previous write was in flight (no timer: a lone completion is written at once). Failures,
hand-backs and cancel acknowledgements go one by one. While the database is away nothing is
dropped; delivery resumes when it is back. An answer the queue refuses (the attempt lost its
lease meanwhile) is logged by the queue and let go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.bounded import Bounded, Stuck
from agent.dbconn import AgentDb, DbDown
from control.core import storage
from control.core.queue import ClaimedTask, Failure, Queue

log = logging.getLogger(__name__)


PUBLISH_TIMEOUT_S = 20.0  # renaming an attempt's outputs into place (the storage may be a NAS)
PUBLISH_RETRY_S = 5.0  # after a publish that failed (storage away): try the completion again


@dataclass
class _Item:
    kind: str  # complete | fail | release | ack_cancel
    task: ClaimedTask
    result: dict[str, Any] | None = None
    failure: Failure | None = None
    staged: list[tuple[str, str]] = field(default_factory=list)  # outputs not yet in place


class Outbox:
    def __init__(self, db: AgentDb) -> None:
        self._db = db
        self._items: list[_Item] = []
        self._in_flight: list[_Item] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.delivered_completions = 0
        self._files: Bounded[None] = Bounded("publish", PUBLISH_TIMEOUT_S)

    def complete(
        self,
        task: ClaimedTask,
        result: dict[str, Any] | None,
        staged: list[tuple[str, str]] | None = None,
    ) -> None:
        """`staged`: the attempt's outputs under temporary names, published (renamed into
        place) in the transaction that records the completion, only if the queue accepts it."""
        self._put(_Item("complete", task, result=result, staged=list(staged or [])))

    def fail(self, task: ClaimedTask, failure: Failure) -> None:
        self._put(_Item("fail", task, failure=failure))

    def release(self, task: ClaimedTask) -> None:
        self._put(_Item("release", task))

    def ack_cancel(self, task: ClaimedTask) -> None:
        self._put(_Item("ack_cancel", task))

    def _put(self, item: _Item) -> None:
        self._items.append(item)
        self._idle.clear()
        self._wake.set()

    def pending_tokens(self) -> list[uuid.UUID]:
        """Tokens of answers not yet delivered: their leases must still be renewed."""
        return [i.task.token for i in (*self._in_flight, *self._items)]

    def __len__(self) -> int:
        """Answers not yet delivered, including those being written now."""
        return len(self._items) + len(self._in_flight)

    async def flushed(self, timeout_s: float) -> bool:
        """Wait until everything was delivered (True) or the timeout passed (False)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._items:
                if not self._db.up.is_set():
                    await self._db.up.wait()
                self._in_flight, self._items = self._items, []
                left = await self._deliver(self._in_flight)
                self._in_flight = []
                self._items[:0] = left  # kept, in order, for when the database is back
                if left and self._db.up.is_set():  # the storage, not the database, failed
                    await asyncio.sleep(PUBLISH_RETRY_S)
            self._idle.set()

    async def _deliver(self, batch: list[_Item]) -> list[_Item]:
        """Deliver what can be; return what could not (the database went away)."""
        completions = [i for i in batch if i.kind == "complete"]
        others = [i for i in batch if i.kind != "complete"]
        staged = {i.task.id: [(Path(t), Path(d)) for t, d in i.staged] for i in completions}

        async def publish(accepted: set[int]) -> None:
            pairs = [p for tid in sorted(accepted) for p in staged.get(tid, [])]
            if pairs:
                await self._files.run(lambda: storage.publish(pairs))

        try:
            if completions:
                accepted = await self._db.run(
                    Queue.complete_many,
                    [(i.task, i.result) for i in completions],
                    publish=publish if any(staged.values()) else None,
                )
                self.delivered_completions += len(accepted)
                refused = [p for tid, ps in staged.items() if tid not in accepted for p in ps]
                if refused:  # a lost attempt's outputs: never published, never left behind
                    with contextlib.suppress(Stuck, OSError):
                        await self._files.run(lambda: storage.discard(refused))
        except DbDown:
            return batch
        except (Stuck, OSError) as exc:
            # nothing recorded (the transaction rolled back): the storage did not take the
            # outputs; the completions wait, their leases renewed, and are tried again
            log.warning("publishing outputs failed (%s): completion kept, retrying", exc)
            return batch
        for n, item in enumerate(others):
            try:
                await self._deliver_one(item)
            except DbDown:
                return others[n:]
        return []

    async def _deliver_one(self, item: _Item) -> None:
        task = item.task
        extra = {"task_id": task.id}
        if item.kind == "fail":
            failure = item.failure
            assert failure is not None
            state = await self._db.run(Queue.fail, task, failure)
            log.warning(
                "task %s (%s) failed: %s -> %s",
                task.id,
                task.type,
                failure.message,
                state,
                extra=extra,
            )
        elif item.kind == "release":
            await self._db.run(Queue.release, task)
            log.info("task %s handed back to the queue", task.id, extra=extra)
        elif item.kind == "ack_cancel":
            await self._db.run(Queue.acknowledge_cancel, task)
            log.info("task %s cancelled", task.id, extra=extra)
