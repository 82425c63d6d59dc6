"""Agent footprint: idle RSS and CPU of a real agent process, and what 200 agents' heartbeats
cost PostgreSQL.

    uv run python bench/agent.py [--idle-seconds 60] [--agents 200] [--window 60]

1. One `contentctl agent run` on an empty queue: resident memory after start-up, CPU over the
   idle window (heartbeats, LISTEN, claim looks included), and what it costs the server: its
   transactions a minute (each a round trip) and PostgreSQL's CPU.
2. AGENTS simulated agents, one connection each holding its session key (the advisory lock
   that says the agent is alive), doing exactly what an agent's heartbeat does every 5 s with
   one long task running (the heartbeat row, written when its content moved or once a minute,
   with the task's 150 s lease renewed on the same round trip once a third of it passed; the
   reply says whether schedules are due, expired or orphaned leases wait for a sweep or
   commands wait: none here), staggered; PostgreSQL's CPU over the window, as a share of one
   core.

Targets: idle RSS under 80 MB, idle CPU under 1% of a core, heartbeats of 200 agents under 1%
of one core of PostgreSQL. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import sys

# bench/queue.py is named after the stdlib's queue: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if not p or not p.rstrip("/").endswith("/bench")]

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.load import LoadSampler
from agent.runner import LEASE_S
from control.core import db, fleet, schedules
from control.core.queue import Queue, TaskSpec
from control.core.readmodels import HeartbeatBody
from control.head.embedded import EmbeddedServer

ROUND_TRIPS = [0]  # the simulated agents' round trips to the server after start-up


def with_db(url: str, name: str) -> str:
    head, _, query = url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


def _cpu_seconds(proc: psutil.Process) -> float:
    """CPU time of a process: nanoseconds from /proc/PID/schedstat where Linux has it (psutil's
    cpu_times tick at 10 ms, too coarse for 200 backends that each run a few ms), else psutil."""
    try:
        return int(Path(f"/proc/{proc.pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        t = proc.cpu_times()
        return float(t.user + t.system)


def postgres_cpu(pgdata: Path) -> float:
    """CPU seconds used so far by the server's processes (postmaster and backends)."""
    total = 0.0
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] != "postgres":
                continue
            parent = proc if str(pgdata) in " ".join(proc.info["cmdline"] or []) else None
            if parent is None:
                pp = proc.parent()
                if pp is None or str(pgdata) not in " ".join(pp.cmdline()):
                    continue
            total += _cpu_seconds(proc)
        except psutil.Error:
            continue
    return total


def _transactions(url: str) -> int:
    """Transactions committed in the bench's database so far (this read's own included)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def idle_agent(url: str, pgdata: Path, seconds: float) -> tuple[float, float, float, float]:
    """An idle agent's RSS (MB) and CPU (% of a core), and what it costs the server: its
    transactions a minute (each a round trip: claims, beats) and the server's CPU."""
    env = dict(
        os.environ,
        CONTENTCTL_DATABASE_URL=url,
        CONTENTCTL_INVENTORY=os.devnull,
        CONTENTCTL_HOME=tempfile.mkdtemp(prefix="bench-agent-"),
    )
    agent = subprocess.Popen(
        [sys.executable, "-m", "tui.launcher", "agent", "run", "--host", "bench-idle"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc = psutil.Process(agent.pid)
        time.sleep(3.0)  # start-up done, first heartbeats sent
        x0, p0 = _transactions(url), postgres_cpu(pgdata)
        t0 = _cpu_seconds(proc)
        w0 = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - w0
        cpu = (_cpu_seconds(proc) - t0) / wall * 100
        pg_cpu = (postgres_cpu(pgdata) - p0) / wall * 100
        # the server's statistics of an idle backend lag up to 10 s: over a minute, a beat or so
        per_min = (_transactions(url) - x0 - 1) / wall * 60
        rss = proc.memory_info().rss / (1024 * 1024)
        return rss, cpu, per_min, pg_cpu
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        shutil.rmtree(env["CONTENTCTL_HOME"], ignore_errors=True)


async def fake_agent(url: str, name: str, offset: float, until: float, interval: float) -> int:
    conn = await db.connect(url, agent=True)
    conn.prepare_threshold = 0  # as the agent's connection does (agent/dbconn.py)
    key = await db.hold_session_key(conn)
    q = Queue(conn, session=key)
    [task] = await q.claim(name, ["noop"], lease_s=LEASE_S)
    sampler = LoadSampler(Path.home())
    gate = fleet.BeatGate()
    beats = 0
    started = datetime.now(UTC)
    t_start = time.monotonic()
    await fleet.register(
        conn,
        fleet.Heartbeat(
            name=name,
            address="10.0.0.1",
            agent_state="online",
            agent_version="bench",
            code_hash="0" * 12,
            pid=1,
            started_at=started,
            enabled_tasks=["noop"],
            declared=True,
            session_key=key,
        ),
    )
    await asyncio.sleep(offset)
    renewed = time.monotonic()
    half = LEASE_S / 2  # the agent's default lease, renewed once half of it has passed
    ride = LEASE_S / 3  # or with a written beat once a third has
    while time.monotonic() < until:
        hb = fleet.Heartbeat(
            name=name,
            address="10.0.0.1",
            agent_state="online",
            agent_version="bench",
            code_hash="0" * 12,
            pid=1,
            started_at=started,
            enabled_tasks=["noop"],
            declared=True,
            session_key=key,
            body=HeartbeatBody.from_json(
                {  # as an agent's (agent/beat.py, heartbeat)
                    "load": sampler.sample(),
                    "counters": {"done_this_run": 0, "done_today": 0},
                    "idle_reason": None,
                    "idle_until": None,
                    "storage": {
                        "ok": True,
                        "error": None,
                        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    },
                    "uptime_s": round(time.monotonic() - t_start),
                    "running": [
                        {
                            "id": task.id,
                            "type": "noop",
                            "progress": 0.5,
                            "stage": None,
                            "stalled": False,
                        }
                    ],
                    "outbox": 0,
                    "task_processes": 1,
                    "db_outages": 0,
                }
            ),
        )
        # as the agent does (agent/runner.py, _heartbeat_once and _heartbeat_loop): written
        # when the content moved, every second beat, or when a lease must be renewed; the
        # renewal rides along on the same round trip; the answer says whether to tick
        # schedules, sweep expired leases or read commands (none of them here)
        now = time.monotonic()
        if gate.due(hb, force=now - renewed >= half):
            renew = [task.token] if now - renewed >= ride else []
            reply = await fleet.beat(conn, hb, renew=renew, lease_s=LEASE_S)
            ROUND_TRIPS[0] += 1
            if renew:
                renewed = now
            if reply.commands_waiting:
                await fleet.pending_commands(conn, name)
                ROUND_TRIPS[0] += 1
            if reply.schedules_due:
                await schedules.tick(conn)
                ROUND_TRIPS[0] += 1
            if reply.sweep_due:
                await q.sweep_expired()
                ROUND_TRIPS[0] += 1
        beats += 1
        await asyncio.sleep(interval)
    await conn.close()
    return beats


async def _select_one(url: str, offset: float, until: float, interval: float) -> int:
    conn = await db.connect(url)
    conn.prepare_threshold = 0
    n = 0
    await asyncio.sleep(offset)
    while time.monotonic() < until:
        await conn.execute("SELECT 1")
        n += 1
        await asyncio.sleep(interval)
    await conn.close()
    return n


async def floor_cost(pgdata: Path, url: str, agents: int, window: float) -> float:
    """The same connections doing nothing but `SELECT 1` at the same pace: what this machine
    charges for a round trip at all, the floor under any heartbeat."""
    interval = 5.0
    until = time.monotonic() + window + interval
    runner = asyncio.gather(
        *(_select_one(url, interval * i / agents, until, interval) for i in range(agents))
    )
    await asyncio.sleep(interval)
    c0, w0 = postgres_cpu(pgdata), time.monotonic()
    await asyncio.sleep(window)
    c1, w1 = postgres_cpu(pgdata), time.monotonic()
    await runner
    return (c1 - c0) / (w1 - w0) * 100


async def heartbeat_cost(url: str, pgdata: Path, agents: int, window: float) -> tuple[float, int]:
    conn = await db.connect(url)
    await Queue(conn).enqueue([TaskSpec("noop")] * agents)
    await conn.close()
    interval = 5.0
    until = time.monotonic() + window + interval
    jobs = [
        fake_agent(url, f"sim-{i}", interval * i / agents, until, interval) for i in range(agents)
    ]
    await asyncio.sleep(0)
    runner = asyncio.gather(*jobs)
    await asyncio.sleep(interval)  # everybody connected and beating
    c0, w0 = postgres_cpu(pgdata), time.monotonic()
    await asyncio.sleep(window)
    c1, w1 = postgres_cpu(pgdata), time.monotonic()
    beats = sum(await runner)
    return (c1 - c0) / (w1 - w0) * 100, beats


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--idle-seconds", type=float, default=60, help="how long the idle agent is watched (s)"
    )
    ap.add_argument("--agents", type=int, default=200, help="simulated agents heartbeating")
    ap.add_argument(
        "--window", type=float, default=60, help="how long the server's CPU is measured (s)"
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="contentctl-bench-agent-"))
    server = EmbeddedServer(tmp)
    url = server.ensure_running()
    try:
        conn = asyncio.run(_migrate(url))
        del conn
        rss, cpu, idle_tx, idle_pg = idle_agent(url, server.pgdata, args.idle_seconds)
        print(
            f"idle agent: {rss:.1f} MB resident (target 80), {cpu:.2f}% of a core over "
            f"{args.idle_seconds:g} s (target 1); {idle_tx:.1f} transactions a minute to the "
            f"server, which spent {idle_pg:.2f}% of a core on it"
        )
        pg_cpu, beats = asyncio.run(heartbeat_cost(url, server.pgdata, args.agents, args.window))
        per_min = ROUND_TRIPS[0] / beats * 12 if beats else 0.0  # a beat every 5 s
        print(
            f"{args.agents} agents heartbeating every 5 s: {beats} heartbeats, "
            f"{per_min:.1f} round trips per agent and minute, PostgreSQL at "
            f"{pg_cpu:.2f}% of one core over {args.window:g} s (target 1)"
        )
        floor = asyncio.run(floor_cost(server.pgdata, url, args.agents, args.window))
        print(
            f"  floor: the same {args.agents} connections sending only `SELECT 1` every 5 s: "
            f"{floor:.2f}% (a heartbeat costs {pg_cpu / floor if floor else 0:.1f}x a bare "
            "round trip on this machine)"
        )
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        json.dumps(
            {
                "idle_rss_mb": round(rss, 1),
                "idle_cpu_percent": round(cpu, 2),
                "idle_transactions_per_minute": round(idle_tx, 1),
                "idle_pg_cpu_percent": round(idle_pg, 2),
                "agents": args.agents,
                "heartbeat_pg_cpu_percent": round(pg_cpu, 2),
                "round_trips_per_agent_minute": round(per_min, 1),
                "select1_floor_pg_cpu_percent": round(floor, 2),
            }
        )
    )
    return 0


async def _migrate(url: str) -> None:
    conn = await db.connect(url)
    await db.migrate(conn)
    await conn.close()


if __name__ == "__main__":
    sys.exit(main())
