"""Retention benchmark: status and the dashboard's refresh over a big tasks table, before and
after pruning, and what a prune pass costs agents meanwhile.

    uv run python bench/retention.py [--tasks 10000000] [--hosts 500]

1. TASKS tasks (99% finished, spread over 30 days, 500 hosts: bench/fleetdata.py) in a fresh
   embedded PostgreSQL; the status rollup warm, as on a head that runs all day.
2. `status --json`'s query (control.head.status.snapshot) and one dashboard refresh's reads
   (ControlPlane.fleet), 10 times each: p50 and max.
3. One prune pass with the default retention (succeeded 14 days: about half the rows go), in
   batches of 5,000: wall time, rows per second, and meanwhile an agent's claim round trip
   (claim one noop task, complete it, again) measured before and during the prune: p50, p99
   (target: p99 under 25 ms while pruning).
4. 2. again on the pruned table.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if not p or not p.rstrip("/").endswith("/bench")]

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fleetdata import fill_fleet
from control.core import db, retention
from control.core.inventory import Inventory
from control.core.queue import Queue, TaskSpec
from control.core.settings import DatabaseTarget
from control.head import status
from control.head.api import ControlPlane
from control.head.embedded import EmbeddedServer


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def reads(url: str, conn: db.AsyncConn) -> dict[str, float]:
    inv = Inventory(path=None)
    plane = ControlPlane(DatabaseTarget(url), inv)
    out: dict[str, float] = {}
    try:
        for name, call in (
            ("status", lambda: status.snapshot(conn, inv)),
            ("refresh", plane.fleet),
        ):
            await call()  # warm
            times = []
            for _ in range(10):
                t0 = time.perf_counter()
                await call()
                times.append((time.perf_counter() - t0) * 1000)
            out[f"{name}_p50_ms"] = round(statistics.median(times), 1)
            out[f"{name}_max_ms"] = round(max(times), 1)
    finally:
        await plane.close()
    return out


async def claims(url: str, stop: asyncio.Event, times: list[float]) -> None:
    """An agent's claim round trip, over and over: claim one task, complete it."""
    conn = await db.connect(url)
    conn.prepare_threshold = 0
    q = Queue(conn)
    try:
        while not stop.is_set():
            t0 = time.perf_counter()
            got = await q.claim("bench-agent", ["sleep"], limit=1)
            times.append((time.perf_counter() - t0) * 1000)
            for t in got:
                await q.complete(t, {})
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def run(url: str, tasks: int, hosts: int) -> dict[str, Any]:
    conn = await db.open_url(url)
    out: dict[str, Any] = {"tasks": tasks}
    try:
        t0 = time.perf_counter()
        await fill_fleet(conn, tasks, hosts, step_s=max(1, 2_592_000 // tasks))
        await status.snapshot(conn, Inventory(path=None))  # the rollup, warm
        print(f"filled {tasks} tasks in {time.perf_counter() - t0:.0f} s", flush=True)
        before = await reads(url, conn)
        out["before"] = before
        print(f"before: {before}", flush=True)
        # work for the claimer, of a type the fill does not use (removed before `after`), at a
        # priority that puts it first in claim order: the fill's 66,000 ready tasks of types
        # nobody claims would otherwise be walked by every claim, which is not what this
        # bench measures (see the README on mixed backlogs)
        await Queue(conn).enqueue([TaskSpec("sleep", payload={"seconds": 0}, priority=10)] * 30_000)

        stop = asyncio.Event()
        idle: list[float] = []
        claimer = asyncio.create_task(claims(url, stop, idle))
        await asyncio.sleep(5)
        stop.set()
        await claimer
        stop = asyncio.Event()
        during: list[float] = []
        claimer = asyncio.create_task(claims(url, stop, during))
        t0 = time.perf_counter()
        rep = await retention.prune(conn, {}, None)
        wall = time.perf_counter() - t0
        stop.set()
        await claimer
        pruned = sum(rep.tasks.values())
        out["prune"] = {
            "rows": pruned,
            "wall_s": round(wall, 1),
            "rows_per_s": round(pruned / wall) if wall else None,
            "claim_before_p50_ms": round(pct(idle, 50), 2),
            "claim_before_p99_ms": round(pct(idle, 99), 2),
            "claim_during_p50_ms": round(pct(during, 50), 2),
            "claim_during_p99_ms": round(pct(during, 99), 2),
            "claims_during": len(during),
        }
        print(f"prune: {out['prune']}", flush=True)
        await conn.execute("DELETE FROM tasks WHERE type = 'sleep'")
        await conn.execute("VACUUM ANALYZE tasks")
        await status.snapshot(conn, Inventory(path=None))
        after = await reads(url, conn)
        out["after"] = after
        print(f"after: {after}", flush=True)
    finally:
        await conn.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", type=int, default=10_000_000, help="tasks (default 10,000,000)")
    ap.add_argument("--hosts", type=int, default=500, help="hosts (default 500)")
    args = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="contentctl-bench-retention-"))
    server = EmbeddedServer(state)
    try:
        url = server.ensure_running()
        results = asyncio.run(run(url, args.tasks, args.hosts))
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)  # ~3 GB at 10M tasks
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
