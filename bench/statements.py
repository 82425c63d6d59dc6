"""Database statements per task: what one agent sends PostgreSQL to drain N noop tasks.

    uv run python bench/statements.py [--tasks 2000] [--concurrency 10]

A fresh embedded PostgreSQL logs every statement of the bench database (log_statement = all);
one `contentctl agent run --burst --concurrency C` drains TASKS noop tasks with the repository's
example inventory. The server log is then read back: statements per task in total and by kind
(the first words of each statement), transactions per task (pg_stat_database), and rows
written per task by table (pg_stat_user_tables). Start-up and shutdown are included (for 2,000
tasks they are a few dozen statements).

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if not p or not p.rstrip("/").endswith("/bench")]

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from control.core import db
from control.core.queue import Queue, TaskSpec
from control.head.embedded import EmbeddedServer

STATEMENT = re.compile(r"LOG:\s+(?:statement|execute [^:]*):\s*(.*)")


def _first_lines() -> dict[str, str]:
    """Each named SQL block's first line -> its name (the server log shows one line)."""
    from control.core.sql import queries

    return {body.splitlines()[0].strip(): name for name, body in queries().items()}


FIRST = _first_lines()


def kind(sql: str) -> str:
    """A short name for a statement: the SQL block it comes from, else its verb and table."""
    if sql.strip() in FIRST:
        return FIRST[sql.strip()]
    s = " ".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    s = " ".join(s.split())
    m = re.match(
        r"(?i)(WITH\b.*?\)\s*)?(SELECT|UPDATE|INSERT INTO|DELETE FROM|LISTEN|BEGIN|"
        r"COMMIT|ROLLBACK|SET|NOTIFY|SAVEPOINT|RELEASE)\s*(\S*)",
        s,
    )
    if not m:
        return s[:30]
    verb, what = m.group(2).upper(), m.group(3)
    if verb in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "LISTEN"):
        return verb
    if verb == "SELECT":
        f = re.search(r"(?i)\bFROM\s+(\w+)", s)
        what = f.group(1) if f else what
    return f"{verb} {what}".strip()[:40]


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", type=int, default=2000, help="noop tasks (default 2000)")
    ap.add_argument("--concurrency", type=int, default=10, help="in flight (default 10)")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="contentctl-bench-stmts-"))
    server = EmbeddedServer(home)
    try:
        admin = server.ensure_running()
        head, _, query = admin.partition("?")
        url = f"{head.rsplit('/', 1)[0]}/bench_stmts" + (f"?{query}" if query else "")
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute("DROP DATABASE IF EXISTS bench_stmts WITH (FORCE)")
            c.execute("CREATE DATABASE bench_stmts")

        async def setup() -> None:
            conn = await db.connect(url)
            await db.migrate(conn)
            await Queue(conn).enqueue([TaskSpec("noop")] * args.tasks)
            await conn.close()

        asyncio.run(setup())
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute("ALTER DATABASE bench_stmts SET log_statement = 'all'")
        log = server.pgdata / "log"
        start = log.stat().st_size
        stats = _stats(url)
        env = dict(
            os.environ,
            CONTENTCTL_DATABASE_URL=url,
            CONTENTCTL_INVENTORY=str(ROOT / "inventory.yaml"),
        )
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tui.launcher",
                "agent",
                "run",
                "--host",
                "bench-0",
                "--burst",
                "--concurrency",
                str(args.concurrency),
            ],
            env=env,
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - t0
        time.sleep(11)  # table statistics of an idle backend arrive within 10 s
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute("ALTER DATABASE bench_stmts RESET log_statement")
        after = _stats(url)
        with log.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    kinds: Counter[str] = Counter()
    for line in text.splitlines():
        m = STATEMENT.search(line)
        if m:
            kinds[kind(m.group(1))] += 1
    total = sum(kinds.values())
    per = args.tasks
    out: dict[str, Any] = {
        "tasks": per,
        "wall_s": round(wall, 2),
        "statements_per_task": round(total / per, 3),
        "transactions_per_task": round((after["xact"] - stats["xact"]) / per, 3),
        "rows_written_per_task": {
            t: round((after["rows"].get(t, 0) - stats["rows"].get(t, 0)) / per, 3)
            for t in sorted(after["rows"])
            if after["rows"].get(t, 0) != stats["rows"].get(t, 0)
        },
        "by_kind_per_task": {k: round(n / per, 3) for k, n in kinds.most_common(15)},
    }
    print(f"{per} noop tasks, one agent, {args.concurrency} in flight: {wall:.2f} s")
    print(f"statements per task: {out['statements_per_task']}")
    for k, v in out["by_kind_per_task"].items():
        print(f"  {v:6.3f}  {k}")
    print(f"transactions per task: {out['transactions_per_task']}")
    print(f"rows written per task: {out['rows_written_per_task']}")
    print(json.dumps(out))
    return 0


def _stats(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("SELECT pg_stat_clear_snapshot()")
        row = c.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
        rows = c.execute(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
        ).fetchall()
    return {"xact": int(row[0]) if row else 0, "rows": {str(r[0]): int(r[1]) for r in rows}}


if __name__ == "__main__":
    raise SystemExit(main())
