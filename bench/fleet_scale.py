"""A hundred agents on one head: how the cost grows with the fleet.

    uv run python bench/fleet_scale.py [--sizes 2,10,50,100] [--rate 5] [--busy-s 60]
        [--idle-s 60] [--tree DIR]

For each fleet size N, in one run and one embedded PostgreSQL: a fresh database, N real agent
processes (`contentctl agent run`, default settings, two tasks at once each), then
- busy: 3 long tasks running throughout and one `noop` enqueued every 1/RATE s, each in its
  own transaction (what a feed or a pipeline stage does);
- idle: the long tasks cancelled, nothing enqueued.

Printed per N: statements and transactions per completed task (the server's own log with
log_statement = all, and pg_stat_database), claims and empty claims per enqueued task (claim
statements in the log, less the tasks they started), PostgreSQL's CPU per minute busy and
idle (the server's processes, psutil), enqueue-to-start latency p50/p99 (the tasks' own
created_at/started_at, one clock), `status --json` wall time (median of 3), the dashboard's
refresh read (`ControlPlane.fleet()`, median of 10 after the first) and the agents' total
resident memory.

`--tree DIR` runs another checkout's code (agents, migrations, status, dashboard read) with
this harness: the code before a change, side by side on the same machine. The last line
printed is one JSON object with the figures.
"""

from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if not p or not p.rstrip("/").endswith("/bench")]

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from control.head.embedded import EmbeddedServer

STATEMENT = re.compile(r"LOG:\s+(?:statement|execute [^:]*):\s*(.*)")
# the claim's first line (its comment, as the log shows it): claim and claim_capped
CLAIM_FIRST = ("-- Expired leases first", "-- The claim with worker limits")
LONG_TASKS = 3

READ_FLEET = """
import asyncio, json, statistics, sys, time
from control.core.inventory import Inventory
from control.core.settings import DatabaseTarget
from control.head.api import ControlPlane

async def main() -> None:
    plane = ControlPlane(DatabaseTarget(sys.argv[1]), Inventory(path=None))
    times = []
    for _ in range(11):
        t0 = time.perf_counter()
        await plane.fleet()
        times.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.2)
    await plane.close()
    print(json.dumps(statistics.median(times[1:])))

asyncio.run(main())
"""


def with_db(url: str, name: str) -> str:
    head, _, query = url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


def server_cpu(server: EmbeddedServer) -> float:
    """CPU seconds of the postmaster and every backend so far (ended backends are counted in
    the postmaster's children times)."""
    pid = server.pid()
    if pid is None:
        return 0.0
    p = psutil.Process(pid)
    t = p.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for c in p.children():
        with _gone():
            ct = c.cpu_times()
            total += ct.user + ct.system
    return total


class _gone:
    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: object, exc: object, tb: object) -> bool:
        return typ is not None and issubclass(typ, psutil.Error)  # type: ignore[arg-type]


def pg_backends_uss(server: EmbeddedServer) -> int:
    """Memory the server's client backends hold of their own (unique set: shared buffers not
    counted), summed."""
    pid = server.pid()
    total = 0
    if pid is None:
        return 0
    for c in psutil.Process(pid).children():
        with _gone():
            if "idle" in " ".join(c.cmdline()) or "[local]" in " ".join(c.cmdline()):
                total += c.memory_full_info().uss
    return total


def xacts(conn: psycopg.Connection[Any]) -> int:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database "
        "WHERE datname = current_database()"
    ).fetchone()
    return int(row[0]) if row else 0


def time_sweep(conn: psycopg.Connection[Any], tasks: int) -> float | None:
    """One look for leases of ended sessions (`contentctl_lapse`, taken in turns fleet-wide)
    with `tasks` running tasks spread over the live agents' sessions: median of 5, in a
    transaction rolled back. None when the code has no such function."""
    row = conn.execute("SELECT to_regproc('contentctl_lapse') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    times = []
    with conn.transaction(force_rollback=True):
        conn.execute(
            "INSERT INTO tasks (type, state, run_at, host, attempts, attempt_token, "
            "lease_expires_at, lease_session, started_at) "
            "SELECT 'sleep', 'running', now(), b.name, 1, gen_random_uuid(), "
            "now() + interval '150 s', b.session_key, now() "
            "FROM generate_series(1, %s) AS i "
            "JOIN LATERAL (SELECT name, session_key FROM host_beats "
            "  ORDER BY name OFFSET i %% (SELECT count(*) FROM host_beats) LIMIT 1) AS b ON true",
            (tasks,),
        )
        for _ in range(5):
            conn.execute("UPDATE fleet_sweep SET swept_at = '-infinity'")
            t0 = time.perf_counter()
            conn.execute("SELECT * FROM contentctl_lapse(2, 90)").fetchall()
            times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def run_size(
    server: EmbeddedServer, admin: str, n: int, tree: Path, args: argparse.Namespace
) -> dict[str, Any]:
    name = f"bench_scale_{n}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {name}")
    url = with_db(admin, name)
    state = Path(tempfile.mkdtemp(prefix=f"contentctl-scale-{n}-"))
    (state / "inventory.yaml").write_text("hosts: {}\n")
    env = dict(
        os.environ,
        CONTENTCTL_DATABASE_URL=url,
        CONTENTCTL_INVENTORY=str(state / "inventory.yaml"),
        CONTENTCTL_HOME=str(state / "head"),
    )
    cli = [sys.executable, "-m", "tui.launcher"]
    subprocess.run([*cli, "db", "migrate"], env=env, cwd=tree, check=True, capture_output=True)
    agents: list[subprocess.Popen[bytes]] = []
    try:
        t0 = time.monotonic()
        for i in range(n):
            agents.append(
                subprocess.Popen(
                    [*cli, "agent", "run", "--host", f"a{i:03}", "--concurrency", "2"],
                    env=dict(env, CONTENTCTL_HOME=str(state / f"a{i:03}")),
                    cwd=tree,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        conn = psycopg.connect(url, autocommit=True)
        while True:
            row = conn.execute(
                "SELECT count(*) FROM host_beats WHERE agent_state = 'online'"
            ).fetchone()
            if row and row[0] >= n:
                break
            if time.monotonic() - t0 > 60 + 3 * n:
                raise SystemExit(f"only {row[0] if row else 0} of {n} agents came up")
            time.sleep(0.5)
        started_s = time.monotonic() - t0
        print(f"N={n}: {n} agents online in {started_s:.0f} s", file=sys.stderr)
        time.sleep(10)  # start-up settles (each learns its peers)

        # busy
        conn.execute(
            "INSERT INTO tasks (type, payload, state, run_at, max_attempts, timeout_s) "
            "SELECT 'sleep', '{\"seconds\": 3600, \"progress\": false}', 'queued', now(), 1, "
            "7200 FROM generate_series(1, %s)",
            (LONG_TASKS,),
        )
        conn.execute("NOTIFY contentctl_tasks, 'sleep'")
        time.sleep(3)
        with psycopg.connect(admin, autocommit=True) as c:  # every session, the agents' too
            c.execute("ALTER SYSTEM SET log_statement = 'all'")
            c.execute("SELECT pg_reload_conf()")
        log = server.pgdata / "log"
        mark = log.stat().st_size
        x0, cpu0, w0 = xacts(conn), server_cpu(server), time.monotonic()
        first_id = None
        enq = 0
        interval = 1.0 / args.rate
        next_at = time.monotonic()
        while time.monotonic() - w0 < args.busy_s:
            # as Queue.enqueue does (announced `t XID N TYPES`: older agents wake on any text)
            row = conn.execute(
                "WITH t AS (INSERT INTO tasks (type, state, run_at) "
                "VALUES ('noop', 'queued', now()) RETURNING id) "
                "SELECT id, pg_notify('contentctl_tasks', "
                "'t ' || pg_current_xact_id()::text || ' 1 noop') FROM t"
            ).fetchone()
            enq += 1
            if first_id is None and row:
                first_id = row[0]
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        time.sleep(2)  # the last ones finish
        busy_wall = time.monotonic() - w0
        cpu_busy = server_cpu(server) - cpu0
        x_busy = xacts(conn) - x0
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute("ALTER SYSTEM RESET log_statement")
            c.execute("SELECT pg_reload_conf()")
        with log.open("rb") as f:
            f.seek(mark)
            text = f.read().decode(errors="replace")
        statements = claims = 0
        kinds: Counter[str] = Counter()
        for line in text.splitlines():
            m = STATEMENT.search(line)
            if m:
                statements += 1
                kinds[m.group(1).strip()[:60]] += 1
                if m.group(1).lstrip().startswith(CLAIM_FIRST):
                    claims += 1
        rows = conn.execute(
            "SELECT extract(epoch FROM started_at - created_at) * 1000, state FROM tasks "
            "WHERE type = 'noop' AND id >= %s",
            (first_id or 0,),
        ).fetchall()
        done = sum(1 for _, s in rows if s == "succeeded")
        for k, c in kinds.most_common(args.kinds):
            print(f"  {c / max(done, 1):6.2f}/task  {k}", file=sys.stderr)
        lat = sorted(float(ms) for ms, _ in rows if ms is not None)
        started = len(lat)

        # idle
        conn.execute("UPDATE tasks SET cancel_requested_at = now() WHERE type = 'sleep'")
        conn.execute("NOTIFY contentctl_tasks, 'cancel'")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM tasks WHERE state = 'running'").fetchone()
            if row and row[0] == 0:
                break
            time.sleep(0.5)
        time.sleep(5)
        cpu0, w0 = server_cpu(server), time.monotonic()
        x0 = xacts(conn)
        time.sleep(args.idle_s)
        idle_wall = time.monotonic() - w0
        cpu_idle = server_cpu(server) - cpu0
        x_idle = xacts(conn) - x0
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchone()
        sessions = int(row[0]) if row else 0
        backend_uss = pg_backends_uss(server)
        sweep_ms = time_sweep(conn, args.sweep_tasks)

        status_ms = []
        for _ in range(3):
            s0 = time.perf_counter()
            subprocess.run(
                [*cli, "status", "--json"], env=env, cwd=tree, check=True, capture_output=True
            )
            status_ms.append((time.perf_counter() - s0) * 1000)
        read = subprocess.run(
            [sys.executable, "-c", READ_FLEET, url],
            env=env,
            cwd=tree,
            check=True,
            capture_output=True,
            text=True,
        )
        rss = 0
        for a in agents:
            with _gone():
                p = psutil.Process(a.pid)
                rss += p.memory_info().rss
                for c in p.children(recursive=True):
                    with _gone():
                        rss += c.memory_info().rss
        conn.close()
    finally:
        for a in agents:
            if a.poll() is None:
                a.send_signal(signal.SIGTERM)
        for a in agents:
            try:
                a.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(a.pid, signal.SIGKILL)
                a.wait(5)
        shutil.rmtree(state, ignore_errors=True)
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else float("nan")

    return {
        "agents": n,
        "start_s": round(started_s, 1),
        "enqueued": enq,
        "completed": done,
        "statements_per_task": round(statements / max(done, 1), 2),
        "transactions_per_task": round(x_busy / max(done, 1), 2),
        "claims_per_task": round(claims / max(enq, 1), 2),
        "empty_claims_per_task": round(max(0, claims - started) / max(enq, 1), 2),
        "pg_cpu_busy_s_per_min": round(cpu_busy / busy_wall * 60, 2),
        "pg_cpu_idle_pct": round(cpu_idle / idle_wall * 100, 2),
        "idle_tx_per_min": round(x_idle / idle_wall * 60, 1),
        "latency_p50_ms": pct(0.5),
        "latency_p99_ms": pct(0.99),
        "status_json_ms": round(statistics.median(status_ms)),
        "dashboard_read_ms": round(float(read.stdout.strip()), 1),
        "agents_rss_mb": round(rss / 2**20),
        "sessions_per_agent": round(sessions / n, 2),
        "pg_mb_per_session": round(backend_uss / max(sessions, 1) / 2**20, 2),
        "sweep_ms": sweep_ms,
    }


COLUMNS = [
    ("agents", "N"),
    ("statements_per_task", "stmt/task"),
    ("transactions_per_task", "tx/task"),
    ("claims_per_task", "claims/task"),
    ("empty_claims_per_task", "empty/task"),
    ("pg_cpu_busy_s_per_min", "PG busy s/min"),
    ("pg_cpu_idle_pct", "PG idle %"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p99_ms", "p99 ms"),
    ("status_json_ms", "status ms"),
    ("dashboard_read_ms", "dash ms"),
    ("agents_rss_mb", "RSS MB"),
    ("sessions_per_agent", "conns/agent"),
    ("pg_mb_per_session", "PG MB/conn"),
    ("sweep_ms", "sweep ms"),
]


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="2,10,50,100", help="fleet sizes (default 2,10,50,100)")
    ap.add_argument("--rate", type=float, default=5.0, help="noop tasks a second (default 5)")
    ap.add_argument("--busy-s", type=float, default=60.0, help="busy phase (default 60 s)")
    ap.add_argument("--idle-s", type=float, default=60.0, help="idle phase (default 60 s)")
    ap.add_argument(
        "--sweep-tasks", type=int, default=1000, help="running tasks the sweep reads (1000)"
    )
    ap.add_argument("--kinds", type=int, default=0, help="print the N commonest statements")
    ap.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose code runs")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    home = Path(tempfile.mkdtemp(prefix="contentctl-bench-scale-"))
    server = EmbeddedServer(home)
    out = []
    try:
        admin = server.ensure_running()
        for n in sizes:
            fig = run_size(server, admin, n, args.tree.resolve(), args)
            out.append(fig)
            print(json.dumps(fig), file=sys.stderr)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    print(
        f"code: {args.tree}, {args.rate:g} noop/s, busy {args.busy_s:g} s, idle {args.idle_s:g} s"
    )
    print(" | ".join(h for _, h in COLUMNS))
    for fig in out:
        print(" | ".join(str(fig[k]) for k, _ in COLUMNS))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
