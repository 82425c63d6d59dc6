"""Intake benchmark: polling SOURCES podcast feeds (served on loopback) that have nothing new.

    uv run python bench/intake.py [--sources 200] [--concurrency 10]

One agent (poll_source only, CONCURRENCY in flight) makes the first poll of every source (which
takes the latest 5 episodes each and is not measured). Then every source's schedule is made due
at once, twice: once with feeds that answer a conditional GET with 304 Not Modified, once with
feeds that send no validators (the same body again, parsed and compared). For each round: the
wall time from the first poll task enqueued to the last one finished, and the rows written per
poll by table (from pg_stat_user_tables: inserted + updated + deleted). The target is no write
to `sources`, `media_items` or `schedules` payloads when nothing changed; the poll task's own
life (one task row inserted by the tick, claimed, completed; the schedule's tick) is the
remaining cost.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if not p or not p.rstrip("/").endswith("/bench")]

import argparse
import asyncio
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from control.core import db, intake
from control.head.embedded import EmbeddedServer

EPISODES = 5
STATS_FLUSH_S = 11  # an idle backend reports its table statistics within 10 s


def feed(n: int) -> bytes:
    items = "".join(
        f"<item><title>Show {n} episode {i}</title><guid>s{n}-e{i}</guid>"
        f"<pubDate>Mon, 0{i} Jan 2024 10:00:00 GMT</pubDate>"
        f'<enclosure url="http://127.0.0.1:9/s{n}e{i}.ogg" type="audio/ogg"/></item>'
        for i in range(EPISODES, 0, -1)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Show {n}</title>'
        f"{items}</channel></rss>"
    ).encode()


class Feeds:
    validators = True
    requests = 0
    not_modified = 0


def serve() -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            Feeds.requests += 1
            n = int(self.path.strip("/").split(".")[0])
            etag = f'"s{n}"'
            if Feeds.validators and self.headers.get("If-None-Match") == etag:
                Feeds.not_modified += 1
                self.send_response(304)
                self.end_headers()
                return
            body = feed(n)
            self.send_response(200)
            if Feeds.validators:
                self.send_header("ETag", etag)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


async def writes(conn: db.AsyncConn) -> dict[str, int]:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = await db.rows(
        conn,
        "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del AS n FROM pg_stat_user_tables",
    )
    return {str(r["relname"]): int(r["n"]) for r in rows}


async def succeeded(conn: db.AsyncConn) -> int:
    row = await db.row(
        conn, "SELECT count(*) AS n FROM tasks WHERE type = 'poll_source' AND state = 'succeeded'"
    )
    return int(row["n"]) if row else 0


async def wait_polls(conn: db.AsyncConn, n: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while await succeeded(conn) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"polls not done in {timeout_s} s ({await succeeded(conn)}/{n})")
        await asyncio.sleep(0.05)


async def run(url: str, base: str, sources: int, concurrency: int, state: Path) -> dict[str, Any]:
    conn = await db.open_url(url)
    for n in range(sources):
        await intake.add(
            conn,
            name=f"show-{n}",
            url=f"{base}/{n}.xml",
            kind="podcast",
            options={"latest": EPISODES},
            spec=intake.poll_schedule(f"show-{n}", 3600, None),
        )
    inventory = state / "inventory.yaml"
    inventory.write_text(
        f"hosts:\n  poller: {{address: 127.0.0.2, enabled_tasks: [poll_source], "
        f"max_concurrent_tasks: {concurrency}}}\n"
    )
    env = dict(
        os.environ,
        CONTENTCTL_DATABASE_URL=url,
        CONTENTCTL_INVENTORY=str(inventory),
        CONTENTCTL_STORAGE_ROOT=str(state / "storage"),
    )
    log = (state / "agent.log").open("w")
    agent = subprocess.Popen(
        [sys.executable, "-m", "tui.launcher", "agent", "run", "--host", "poller"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    out: dict[str, Any] = {"sources": sources}
    try:
        t0 = time.perf_counter()
        await wait_polls(conn, sources)
        out["first_poll_s"] = round(time.perf_counter() - t0, 2)
        print(f"first polls of {sources} sources: {out['first_poll_s']} s")
        done = sources
        for label, validators in (("304", True), ("unchanged_200", False)):
            Feeds.validators = validators
            await asyncio.sleep(STATS_FLUSH_S)
            before = await writes(conn)
            mark = await db.row(conn, "SELECT max(id) AS id FROM tasks")
            await conn.execute("UPDATE schedules SET next_run_at = now()")
            done += sources
            await wait_polls(conn, done)
            # from the first poll enqueued to the last finished (agents look for due
            # schedules every third heartbeat: that wait is not the polls' cost)
            span = await db.row(
                conn,
                "SELECT extract(epoch FROM max(finished_at) - min(created_at)) AS s FROM tasks "
                "WHERE type = 'poll_source' AND id > %(id)s",
                {"id": mark["id"] if mark else 0},
            )
            wall = float(span["s"]) if span else 0.0
            await asyncio.sleep(STATS_FLUSH_S)
            after = await writes(conn)
            per = {
                t: round((after.get(t, 0) - before.get(t, 0)) / sources, 2)
                for t in sorted(after)
                if after.get(t, 0) != before.get(t, 0)
            }
            per["schedules"] = round(per.get("schedules", 0) - 1, 2)  # our own UPDATE
            per = {t: v for t, v in per.items() if v}
            out[f"{label}_wall_s"] = round(wall, 2)
            out[f"{label}_writes_per_poll"] = per
            print(f"polls with nothing new ({label}): {wall:.2f} s for {sources}; rows written")
            print(f"  per poll by table: {per}")
        items = await db.row(conn, "SELECT count(*) AS n FROM media_items")
        out["items"] = int(items["n"]) if items else 0
        out["not_modified_answers"] = Feeds.not_modified
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        log.close()
        await conn.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sources", type=int, default=200, help="loopback feeds (default 200)")
    ap.add_argument("--concurrency", type=int, default=10, help="polls in flight (default 10)")
    args = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="contentctl-bench-intake-"))
    server = EmbeddedServer(state / "pg")
    http_server, base = serve()
    try:
        url = server.ensure_running()
        results = asyncio.run(run(url, base, args.sources, args.concurrency, state))
    finally:
        http_server.shutdown()
        server.stop()
        shutil.rmtree(state, ignore_errors=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
