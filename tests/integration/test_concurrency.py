"""Many claimers in several processes over thousands of tasks: each task runs exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from control.core import db
from control.core.queue import Queue, TaskSpec

pytestmark = pytest.mark.slow

TASKS = 3000
PROCESSES = 3
CONNECTIONS_PER_PROCESS = 4


async def test_every_task_runs_exactly_once(db_url: str, queue: Queue, conn: db.AsyncConn) -> None:
    await queue.enqueue([TaskSpec("noop")] * TASKS)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.workers.claimer", db_url, str(CONNECTIONS_PER_PROCESS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    completed: list[int] = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=120)
            assert p.returncode == 0
            completed += json.loads(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    dupes = [i for i, n in Counter(completed).items() if n > 1]
    assert dupes == []
    assert len(completed) == TASKS
    cur = await conn.execute(
        "SELECT state, attempts, count(*) AS n, count(DISTINCT host) AS hosts "
        "FROM tasks GROUP BY state, attempts"
    )
    rows = await cur.fetchall()
    assert [(r["state"], r["attempts"], r["n"]) for r in rows] == [("succeeded", 1, TASKS)]
    assert rows[0]["hosts"] > PROCESSES  # the work really was spread over the claimers


async def test_the_agent_s_concurrent_operations_do_not_nest_transactions(
    db_url: str, queue: Queue, conn: db.AsyncConn
) -> None:
    """The agent shares one connection between its loops: a schedule tick from the heartbeat
    while the outbox completes tasks used to nest one transaction inside the other and fail
    with OutOfOrderTransactionNesting (found by bench/intake.py). Both must commit."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from agent.dbconn import AgentDb
    from control.core import schedules

    for n in range(20):
        await schedules.put(
            conn,
            schedules.Schedule(f"s{n}", "noop", {}, every_s=60),
            now=datetime.now(UTC) - timedelta(minutes=2),
        )
    # polls complete in a transaction (the completion hook records what they found)
    await queue.enqueue([TaskSpec("poll_source", payload={"source_id": 0})] * 20)
    agent_db = AgentDb(db_url)
    await agent_db.open()
    try:
        claimed = await agent_db.run(Queue.claim, "h", ["poll_source"], limit=20)

        async def complete_one_by_one() -> None:
            for task in claimed:
                await agent_db.run(Queue.complete_many, [(task, {"status": 304})])

        await asyncio.gather(agent_db.sql(schedules.tick), complete_one_by_one())
    finally:
        await agent_db.close()
    cur = await conn.execute(
        "SELECT count(*) FILTER (WHERE state = 'succeeded') AS done, "
        "count(*) FILTER (WHERE unique_key LIKE 'schedule:%%') AS ticked FROM tasks"
    )
    assert dict(await cur.fetchone() or {}) == {"done": 20, "ticked": 20}
