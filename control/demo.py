"""`contentctl demo`: the embedded database, real local agents, and a batch of work to watch.

Until the media pipeline lands, the batch is the diagnostic task types (noop, sleep, fail),
and the demo says so: it shows a real queue moving through real agent processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid

from control import db
from control.queue import Queue, TaskSpec
from control.settings import ENV_DATABASE_URL, DatabaseTarget
from control.sql import q

DEMO_TIMEOUT_S = 120


def _batch(tag: str) -> list[TaskSpec]:
    specs = [TaskSpec("noop", {"demo": tag}) for _ in range(20)]
    specs += [
        TaskSpec("sleep", {"demo": tag, "seconds": s}, priority=1) for s in (1, 1.5, 2, 2.5, 3, 3)
    ]
    specs.append(
        TaskSpec(
            "fail", {"demo": tag, "retryable": True, "message": "flaky on purpose"}, max_attempts=2
        )
    )
    specs.append(
        TaskSpec("fail", {"demo": tag, "retryable": False, "message": "broken on purpose"})
    )
    return specs


async def _counts(conn: db.AsyncConn, ids: list[int]) -> dict[str, int]:
    cur = await conn.execute(
        "SELECT state, count(*) AS n FROM tasks WHERE id = ANY(%(ids)s) GROUP BY state",
        {"ids": ids},
    )
    return {str(r["state"]): int(r["n"]) for r in await cur.fetchall()}  # type: ignore[call-overload]


async def _spawn_agent(name: str, url: str) -> asyncio.subprocess.Process:
    env = dict(os.environ)
    env[ENV_DATABASE_URL] = url  # the environment, never argv: a URL may carry a password
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tui.launcher",
        "agent",
        "run",
        "--host",
        name,
        "--concurrency",
        "2",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def run(target: DatabaseTarget, *, agents: int, headless: bool) -> int:
    url = await asyncio.to_thread(db.resolve_url, target)
    conn = await db.open_database(DatabaseTarget(url))
    tag = uuid.uuid4().hex[:8]
    procs: list[asyncio.subprocess.Process] = []
    try:
        ids = [e.id for e in await Queue(conn).enqueue(_batch(tag))]
        print(
            f"demo {tag}: {len(ids)} diagnostic tasks (noop, sleep, fail) "
            f"on {agents} local agent(s)"
        )
        print("(the media pipeline demo arrives with the pipeline; this is the queue itself)")
        for i in range(agents):
            procs.append(await _spawn_agent(f"demo-agent-{i + 1}", url))
        start = time.monotonic()
        last = ""
        while True:
            counts = await _counts(conn, ids)
            line = "  ".join(f"{s}={counts[s]}" for s in sorted(counts))
            if line != last:
                print(f"  {time.monotonic() - start:5.1f}s  {line}", flush=True)
                last = line
            if not {"queued", "scheduled", "running"} & counts.keys():
                break
            if time.monotonic() - start > DEMO_TIMEOUT_S:
                print("demo: work did not finish in time; see `contentctl tasks`", file=sys.stderr)
                return 1
            await asyncio.sleep(0.5)
        cur = await conn.execute(q("task_by_id"), {"id": ids[-1]})
        row = await cur.fetchone()
        print(
            f"done in {time.monotonic() - start:.1f}s: {counts.get('succeeded', 0)} succeeded, "
            f"{counts.get('failed', 0)} failed as designed "
            f"(e.g. task {ids[-1]}: {row['error_message'] if row else '?'})"
        )
        print("see them with `contentctl tasks` and `contentctl status`")
        if not headless:
            print("(the dashboard arrives with issue 6)")
        return 0
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                await asyncio.wait_for(p.wait(), 15)
            except TimeoutError:
                p.kill()
                await p.wait()
        await conn.close()
