"""Read-side queries for people: task lists and details as typed rows."""

from __future__ import annotations

from control.core.db import AsyncConn
from control.core.errors import UsageError
from control.core.sql import q
from control.core.tasktypes import STATES, is_known
from control.head.models import Task


async def task(conn: AsyncConn, task_id: int) -> Task | None:
    cur = await conn.execute(q("task_by_id"), {"id": task_id})
    row = await cur.fetchone()
    return None if row is None else Task.model_validate(row)


async def tasks(
    conn: AsyncConn,
    *,
    state: str | None = None,
    task_type: str | None = None,
    host: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[Task]:
    if state is not None and state not in STATES:
        raise UsageError(f"unknown state {state!r}: use one of {', '.join(STATES)}")
    if task_type is not None and not is_known(task_type):
        raise UsageError(f"unknown task type {task_type!r}: see `contentctl enqueue --help`")
    if limit < 1:
        raise UsageError(f"--limit must be at least 1, not {limit}")
    cur = await conn.execute(
        q("list_tasks"),
        {"state": state, "type": task_type, "host": host, "limit": limit, "before_id": before_id},
    )
    return [Task.model_validate(r) for r in await cur.fetchall()]
