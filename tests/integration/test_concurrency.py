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
