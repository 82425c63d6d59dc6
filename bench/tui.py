"""The dashboard against a big fleet: 1,000,000 tasks and 500 hosts in a real PostgreSQL.

    uv run python bench/tui.py [--tasks 1000000] [--hosts 500] [--idle-seconds 20]

Runs the real app headless (Textual's test driver renders every frame, without a terminal):
1. time to first paint: from starting the app until the fleet screen shows all hosts
   (target under 500 ms; the status rollup is warm, as on a head that runs all day);
2. main-thread time of one refresh: the synchronous part (building the rows and updating the
   tables in place) of 20 refreshes, p50 and max (target under 30 ms);
3. idle CPU of the dashboard refreshing every second while the 500 hosts heartbeat (each every
   5 s with a new CPU figure, written by another process), the dashboard process's CPU time
   over the window, queries included (target under 3% of a core).

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import sys

# bench/queue.py is named after the stdlib's queue: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if not p or not p.rstrip("/").endswith("/bench")]

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.widgets import DataTable

from bench.fleetdata import fill_fleet
from control.core import db
from control.core.inventory import Inventory
from control.core.settings import DatabaseTarget
from control.head import status
from control.head.api import ControlPlane
from control.head.embedded import EmbeddedServer
from tui.app import Dashboard
from tui.screens import FleetScreen


async def prepare(url: str, tasks: int, hosts: int) -> None:
    conn = await db.open_url(url)
    try:
        t0 = time.perf_counter()
        await fill_fleet(conn, tasks, hosts)
        await status.snapshot(conn, Inventory(path=None))  # roll the finished tail up
        print(f"filled {tasks} tasks and {hosts} hosts in {time.perf_counter() - t0:.1f} s")
    finally:
        await conn.close()


async def heartbeats(url: str, hosts: int, stop: asyncio.Event) -> None:
    """What 500 live agents do: each host beats every 5 s with a new CPU figure (a fifth of
    them each second; real ones write once a minute unless their report changed), so the screen
    has real churn to show. Each host's session key is held, as a live agent's connection holds
    it: the dashboard's look for ended sessions reads a lock table of 500 of them."""
    conn = await db.connect(url)
    try:
        await conn.execute(
            "SELECT count(pg_advisory_lock(%s::int4, i)) FROM generate_series(1, %s) AS i",
            (db.SESSION_LOCK_CLASS, hosts),
        )
        await conn.execute("UPDATE host_beats SET session_key = substring(name from 6)::int + 1")
        tick = 0
        while not stop.is_set():
            await conn.execute(
                "UPDATE host_beats SET last_heartbeat_at = now(), heartbeat = jsonb_set("
                "heartbeat, '{load,cpu_percent}', to_jsonb(round((random() * 100)::numeric, 1)))"
                " WHERE substring(name from 6)::int %% 5 = %s",
                (tick % 5,),
            )
            tick += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        await conn.close()


async def measure(url: str, hosts: int, idle_s: float) -> dict[str, Any]:
    # the agents' beats come from another process, as they do: in this one, their statements
    # were counted as the dashboard's CPU (~0.7% of a core)
    beating = subprocess.Popen([sys.executable, __file__, "--beat", url, "--hosts", str(hosts)])
    try:
        return await _measure(url, hosts, idle_s)
    finally:
        beating.terminate()
        beating.wait(10)


def beat_until_terminated(url: str, hosts: int) -> None:
    stop = asyncio.Event()

    async def run() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await heartbeats(url, hosts, stop)

    asyncio.run(run())


async def _measure(url: str, hosts: int, idle_s: float) -> dict[str, Any]:
    timings: list[float] = []
    original = FleetScreen.show

    def timed(self: FleetScreen, snap: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        original(self, snap)
        timings.append((time.perf_counter() - t0) * 1000)

    FleetScreen.show = timed  # type: ignore[method-assign]
    t0 = time.perf_counter()  # the app's construction counts (it runs a full collection)
    plane = ControlPlane(DatabaseTarget(url), Inventory(path=None))
    app = Dashboard(plane, refresh_s=1.0)
    async with app.run_test(size=(200, 60)) as pilot:
        table = app.screen.query_one("#hosts", DataTable)
        while table.row_count < hosts:
            await pilot.pause(0.005)
        first_paint_ms = (time.perf_counter() - t0) * 1000
        while len(timings) < 21:
            await pilot.pause(0.1)
        refresh = timings[1:21]  # the first built the rows; these update them in place
        c0, w0 = time.process_time(), time.perf_counter()
        await pilot.pause(idle_s)
        cpu = (time.process_time() - c0) / (time.perf_counter() - w0) * 100
    FleetScreen.show = original  # type: ignore[method-assign]
    return {
        "first_paint_ms": round(first_paint_ms, 1),
        "first_build_ms": round(timings[0], 1),
        "refresh_p50_ms": round(statistics.median(refresh), 2),
        "refresh_max_ms": round(max(refresh), 2),
        "idle_cpu_percent": round(cpu, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--hosts", type=int, default=500)
    ap.add_argument("--idle-seconds", type=float, default=20)
    ap.add_argument("--beat", metavar="URL", help=argparse.SUPPRESS)  # the beats' process
    args = ap.parse_args()
    if args.beat:
        beat_until_terminated(args.beat, args.hosts)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="contentctl-bench-tui-"))
    server = EmbeddedServer(tmp)
    url = server.ensure_running()
    try:
        asyncio.run(prepare(url, args.tasks, args.hosts))
        fig = asyncio.run(measure(url, args.hosts, args.idle_seconds))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"first paint of the fleet screen with {args.hosts} hosts: {fig['first_paint_ms']:.0f} ms "
        f"(target 500); building the rows the first time: {fig['first_build_ms']:.0f} ms"
    )
    print(
        f"one refresh on the main thread: p50 {fig['refresh_p50_ms']:.1f} ms, max "
        f"{fig['refresh_max_ms']:.1f} ms (target 30)"
    )
    print(
        f"idle, refreshing every second: {fig['idle_cpu_percent']:.1f}% of a core over "
        f"{args.idle_seconds:g} s, queries included (target 3)"
    )
    print(json.dumps({"tasks": args.tasks, "hosts": args.hosts, **fig}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
