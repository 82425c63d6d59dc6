"""Queue benchmark: contentctl vs pgqueuer and procrastinate on one PostgreSQL, in one run.

    uv run python bench/queue.py [--jobs N] [--workers N] [--rounds N]
                                 [--latency-samples 1000] [--status-tasks 1000000] [--no-peers]

1. Drain throughput: JOBS noop jobs enqueued, then WORKERS worker processes drain them; wall time
   from starting the workers to the last job done, start-up included, at equal work in flight
   per process (BENCH_CONCURRENCY, default 10): `contentctl agent run --burst --concurrency N`
   with the repository's example inventory; pgqueuer's QueueManager with one dequeuer taking
   batches of N; procrastinate's worker at concurrency N. Rounds alternate between the systems;
   the best round of each counts.
2. Enqueue-to-start latency: one idle agent, LATENCY_SAMPLES sequential enqueues, measured in the
   database (started_at - created_at).
3. `status --json` query time with STATUS_TASKS tasks (99% finished) and 500 hosts.

The peers are installed into bench/.peers (a separate venv) on first run. The last line printed
is one JSON object with every figure.
"""

from __future__ import annotations

import sys

# This file is named queue.py; its folder must not shadow the standard library's `queue`.
sys.path[:] = [p for p in sys.path if not p or not p.rstrip("/").endswith("/bench")]

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fleetdata import fill_fleet
from control.core import db
from control.core.inventory import Inventory
from control.core.queue import Queue, TaskSpec
from control.head import status
from control.head.embedded import EmbeddedServer

CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "10"))  # in flight per worker process
PEERS_VENV = ROOT / "bench" / ".peers"
PEER_PACKAGES = ["pgqueuer==1.6.0", "procrastinate==3.10.0", "psycopg[binary,pool]>=3.2"]


def peer_python() -> Path | None:
    py = PEERS_VENV / "bin" / "python"
    if py.exists():
        return py
    uv = shutil.which("uv")
    if uv is None:
        return None
    print("installing the peers (pgqueuer, procrastinate) into bench/.peers ...", flush=True)
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(PEERS_VENV)], check=True)
    res = subprocess.run([uv, "pip", "install", "-q", "-p", str(py), *PEER_PACKAGES])
    return py if res.returncode == 0 else None


def with_db(url: str, name: str) -> str:
    head, _, query = url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


def fresh_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {name}")
    return with_db(admin_url, name)


def run_workers(
    cmds: list[list[str]], url: str, done_sql: str, env: dict[str, str] | None = None
) -> float:
    """Start the worker processes together; the wall time until `done_sql` says all jobs are
    done (start-up included; how long a worker takes to notice the queue is empty and exit is
    not, since the systems differ there by design). The workers' output goes to files: a pipe
    nobody reads fills at 64 KB and blocks a worker in its next write."""
    t0 = time.perf_counter()
    logs = [tempfile.TemporaryFile(mode="w+") for _ in cmds]  # noqa: SIM115 (closed below)
    procs = [
        subprocess.Popen(c, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        for c, log in zip(cmds, logs, strict=True)
    ]
    wall = None
    try:
        with psycopg.connect(url, autocommit=True) as conn:

            def done() -> bool:
                row = conn.execute(done_sql.encode()).fetchone()
                return bool(row and row[0])

            while time.perf_counter() - t0 < 600:
                exited = all(p.poll() is not None for p in procs)
                if done():  # checked after the exit test: the last answers count
                    wall = time.perf_counter() - t0
                    break
                if exited:
                    break
                time.sleep(0.02)
        for p, log in zip(procs, logs, strict=True):
            p.wait(timeout=120)
            if p.returncode != 0:
                log.seek(0)
                tail = log.read()[-500:]
                raise RuntimeError(f"worker failed: {' '.join(map(str, p.args))}: {tail}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    if wall is None:
        raise RuntimeError(f"workers exited before the work was done: {' '.join(cmds[0])}")
    return wall


def count(url: str, sql: str) -> int:
    with psycopg.connect(url) as c:
        row = c.execute(sql).fetchone()  # type: ignore[arg-type]
        return int(row[0]) if row else 0


# -- 1. throughput ----------------------------------------------------------------------------
async def contentctl_setup(url: str, jobs: int) -> None:
    conn = await db.connect(url)
    await db.migrate(conn)
    q = Queue(conn)
    for start in range(0, jobs, 5000):
        await q.enqueue([TaskSpec("noop")] * min(5000, jobs - start))
    await conn.close()


def drain_contentctl(admin_url: str, jobs: int, workers: int) -> float:
    url = fresh_database(admin_url, "bench_contentctl")
    asyncio.run(contentctl_setup(url, jobs))
    # the repository's example inventory, as a user running from the checkout has it (its
    # worker_limits on download_youtube must not slow noop)
    env = dict(
        os.environ, CONTENTCTL_DATABASE_URL=url, CONTENTCTL_INVENTORY=str(ROOT / "inventory.yaml")
    )
    cmds = [
        [
            sys.executable,
            "-m",
            "tui.launcher",
            "agent",
            "run",
            "--host",
            f"bench-{i}",
            "--burst",
            "--concurrency",
            str(CONCURRENCY),
        ]
        for i in range(workers)
    ]
    done_sql = f"SELECT count(*) = {jobs} FROM tasks WHERE state = 'succeeded'"
    return run_workers(cmds, url, done_sql, env)


def drain_pgqueuer(admin_url: str, py: Path, jobs: int, workers: int) -> float:
    url = fresh_database(admin_url, "bench_pgqueuer")
    script = str(ROOT / "bench" / "peers" / "pgqueuer_peer.py")
    subprocess.run([str(py), script, "setup", url, str(jobs)], check=True)
    # one dequeuer taking batches of CONCURRENCY: the same work in flight per process
    cmds = [[str(py), script, "work", url, "1", str(CONCURRENCY)] for _ in range(workers)]
    return run_workers(cmds, url, "SELECT count(*) = 0 FROM pgqueuer")


def drain_procrastinate(admin_url: str, py: Path, jobs: int, workers: int) -> float:
    url = fresh_database(admin_url, "bench_procrastinate")
    script = str(ROOT / "bench" / "peers" / "procrastinate_peer.py")
    subprocess.run(
        [str(py), script, "setup", url, str(jobs)], check=True, stderr=subprocess.DEVNULL
    )
    cmds = [[str(py), script, "work", url, str(CONCURRENCY)] for _ in range(workers)]
    done_sql = f"SELECT count(*) = {jobs} FROM procrastinate_jobs WHERE status = 'succeeded'"
    return run_workers(cmds, url, done_sql)


# -- 2. latency -------------------------------------------------------------------------------
async def latency(admin_url: str, samples: int) -> list[float]:
    url = fresh_database(admin_url, "bench_latency")
    conn = await db.connect(url)
    await db.migrate(conn)
    # the repository's example inventory, as a user running from the checkout has it (its
    # worker_limits on download_youtube must not slow noop)
    env = dict(
        os.environ, CONTENTCTL_DATABASE_URL=url, CONTENTCTL_INVENTORY=str(ROOT / "inventory.yaml")
    )
    agent = subprocess.Popen(
        [sys.executable, "-m", "tui.launcher", "agent", "run", "--host", "bench-idle"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not count(url, "SELECT count(*) FROM hosts"):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # idle: nothing to claim, waiting on LISTEN
        q = Queue(conn)
        for _ in range(samples):
            [e] = await q.enqueue([TaskSpec("noop")])
            while True:
                cur = await conn.execute("SELECT state FROM tasks WHERE id = %s", (e.id,))
                row = await cur.fetchone()
                if row and row["state"] == "succeeded":
                    break
                await asyncio.sleep(0.0005)
        cur = await conn.execute(
            "SELECT extract(epoch FROM started_at - created_at) * 1000 AS ms FROM tasks"
        )
        return sorted(float(r["ms"]) for r in await cur.fetchall())  # type: ignore[arg-type]
    finally:
        agent.terminate()
        agent.wait(30)
        await conn.close()


def pct(sorted_values: list[float], p: float) -> float:
    idx = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[idx]


# -- 3. status --------------------------------------------------------------------------------
async def status_time(
    admin_url: str, n: int, hosts: int = 500, repeat: int = 30
) -> dict[str, float]:
    url = fresh_database(admin_url, "bench_status")
    conn = await db.connect(url)
    await db.migrate(conn)
    t0 = time.perf_counter()
    await fill_fleet(conn, n, hosts)
    fill_s = time.perf_counter() - t0
    inv = Inventory(path=None)
    t0 = time.perf_counter()
    snap = await status.snapshot(conn, inv)  # the first call also rolls the finished tail up
    first_ms = (time.perf_counter() - t0) * 1000
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        snap = await status.snapshot(conn, inv)
        times.append((time.perf_counter() - t0) * 1000)
    total = sum(snap.totals.values())
    assert total == n, f"status counted {total} tasks of {n}"
    assert len(snap.hosts) == hosts
    await conn.close()
    times.sort()
    return {
        "fill_s": fill_s,
        "first_ms": first_ms,
        "p50_ms": statistics.median(times),
        "p95_ms": pct(times, 95),
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--latency-samples", type=int, default=1000)
    ap.add_argument("--status-tasks", type=int, default=1_000_000)
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args()

    external = os.environ.get("CONTENTCTL_DATABASE_URL")
    tmp = None
    server = None
    if external:
        admin_url = with_db(external, "postgres")
    else:
        tmp = Path(tempfile.mkdtemp(prefix="contentctl-bench-"))
        server = EmbeddedServer(tmp)
        admin_url = with_db(server.ensure_running(), "postgres")
    results: dict[str, float | None] = {}
    try:
        py = None if args.no_peers else peer_python()
        print(
            f"drain: {args.jobs} noop jobs, {args.workers} worker processes, "
            f"{args.rounds} rounds, start-up included"
        )
        walls: dict[str, list[float]] = {"contentctl": [], "pgqueuer": [], "procrastinate": []}
        for r in range(args.rounds):
            walls["contentctl"].append(drain_contentctl(admin_url, args.jobs, args.workers))
            if py is not None:
                walls["pgqueuer"].append(drain_pgqueuer(admin_url, py, args.jobs, args.workers))
                walls["procrastinate"].append(
                    drain_procrastinate(admin_url, py, args.jobs, args.workers)
                )
            print(
                f"  round {r + 1}: " + "  ".join(f"{k} {v[-1]:.2f}s" for k, v in walls.items() if v)
            )
        for name, v in walls.items():
            rate = args.jobs / min(v) if v else None
            results[f"{name}_jobs_per_s"] = None if rate is None else round(rate)
            if rate:
                print(f"  {name:>14}: {rate:7.0f} jobs/s (best wall {min(v):.2f}s)")
        peers = [
            results[k] for k in ("pgqueuer_jobs_per_s", "procrastinate_jobs_per_s") if results[k]
        ]
        best_peer = max(peers) if peers else None  # type: ignore[type-var]
        results["ratio_vs_best_peer"] = (
            round(results["contentctl_jobs_per_s"] / best_peer, 2) if best_peer else None  # type: ignore[operator]
        )
        print(f"  ratio vs best peer: {results['ratio_vs_best_peer']}")

        lat = asyncio.run(latency(admin_url, args.latency_samples))
        results["latency_p50_ms"] = round(pct(lat, 50), 2)
        results["latency_p99_ms"] = round(pct(lat, 99), 2)
        print(
            f"enqueue-to-start latency over {len(lat)} samples: "
            f"p50 {results['latency_p50_ms']} ms, "
            f"p99 {results['latency_p99_ms']} ms (targets 5 / 25)"
        )

        st = asyncio.run(status_time(admin_url, args.status_tasks))
        results["status_p50_ms"] = round(st["p50_ms"], 1)
        results["status_p95_ms"] = round(st["p95_ms"], 1)
        results["status_first_ms"] = round(st["first_ms"], 1)
        print(
            f"status with {args.status_tasks} tasks (99% finished), 500 hosts: p50 "
            f"{st['p50_ms']:.1f} ms, p95 {st['p95_ms']:.1f} ms (target 50); first call "
            f"{st['first_ms']:.0f} ms (rolls up the finished tail); fill {st['fill_s']:.0f} s"
        )
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
