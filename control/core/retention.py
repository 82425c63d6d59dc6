"""Retention: finished rows pruned in batches after a retention per kind (the inventory's
`retention:` block over DEFAULTS), task rows folded into the daily rollup (task_daily) in the
same statement that deletes them, and media files (source, audio) removed a number of days
after their item succeeded when a policy asks for it. Transcripts are never deleted here.

Each batch is its own short transaction with a pause between batches, so agents' claims are
not held up by a long prune. `run_daily` claims the day's run through maintenance_runs (one
runner fleet-wide per day) for whichever head process runs the daily maintenance."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from control.core import audit, db
from control.core.queue import ROLLUP_MARGIN_S, Queue
from control.core.sql import q
from control.core.storage import resolve

DEFAULTS: dict[str, float | None] = {
    "succeeded_days": 14,
    "cancelled_days": 14,
    "failed_days": 90,
    "commands_days": 30,
    "daily_counts_days": 30,
    "audit_days": 365,
    "incidents_days": 90,
    "keep_source_days": None,  # files: keep unless the inventory says otherwise
    "keep_audio_days": None,
    "batch_size": 5000,
    "pause_ms": 20,
}
FILE_POLICIES = {"keep_source_days": "source", "keep_audio_days": "audio"}


@dataclass
class Report:
    dry_run: bool
    tasks: dict[str, int] = field(default_factory=dict)  # by state
    commands: int = 0
    daily_counts: int = 0
    audit: int = 0
    incidents: int = 0
    files: dict[str, int] = field(default_factory=dict)  # source/audio: how many
    bytes_freed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "tasks": self.tasks,
            "tasks_total": sum(self.tasks.values()),
            "agent_commands": self.commands,
            "host_daily_counts": self.daily_counts,
            "audit_log": self.audit,
            "alert_incidents": self.incidents,
            "files": self.files,
            "bytes_freed": self.bytes_freed,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }


def policy(configured: dict[str, Any]) -> dict[str, Any]:
    return {**DEFAULTS, **{k: v for k, v in configured.items() if v is not None}}


async def prune(
    conn: db.AsyncConn,
    configured: dict[str, Any],
    storage_root: Path | None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Report:
    """Prune what is past its retention (or count it, with dry_run). `now` is injectable."""
    pol = policy(configured)
    now = now or datetime.now(UTC)
    started = asyncio.get_running_loop().time()
    rep = Report(dry_run)
    batch = int(pol["batch_size"] or 5000)
    pause = float(pol["pause_ms"] or 0) / 1000

    def before(key: str) -> datetime:
        return now - timedelta(days=float(pol[key]))

    if not dry_run:
        # the status rollup counts finished rows first: only counted rows are pruned
        await Queue(conn).rollup()
    # a dry run counts as if the rollup had run: up to where it would move the watermark
    meta = await db.row(
        conn,
        "SELECT greatest(watermark, now() - make_interval(secs => %(margin)s)) AS dry, "
        "watermark FROM task_stats_meta",
        {"margin": ROLLUP_MARGIN_S},
    )
    params = {
        "watermark": (meta["dry"] if dry_run else meta["watermark"]) if meta else now,
        "succeeded_before": before("succeeded_days"),
        "cancelled_before": before("cancelled_days"),
        "failed_before": before("failed_days"),
        "batch": batch,
    }
    if dry_run:
        for r in await db.rows(conn, q("prune_tasks_count"), params):
            rep.tasks[str(r["state"])] = int(r["n"])
    else:
        params["after"] = datetime(1970, 1, 1, tzinfo=UTC)
        while True:
            async with conn.transaction():
                rows = await db.rows(conn, q("prune_tasks"), params)
            for r in rows:
                rep.tasks[str(r["state"])] = rep.tasks.get(str(r["state"]), 0) + int(r["n"])
            if sum(int(r["n"]) for r in rows) < batch:
                break
            params["after"] = max(r["last"] for r in rows)
            await asyncio.sleep(pause)
    rep.commands = await _simple(conn, "prune_commands", before("commands_days"), batch, dry_run)
    rep.daily_counts = await _simple(
        conn, "prune_daily_counts", before("daily_counts_days"), batch, dry_run
    )
    rep.audit = await _simple(conn, "prune_audit", before("audit_days"), batch, dry_run)
    rep.incidents = await _simple(conn, "prune_incidents", before("incidents_days"), batch, dry_run)
    if not dry_run:
        await conn.execute(q("prune_maintenance_runs"), {"before": before("incidents_days")})
    for key, output in FILE_POLICIES.items():
        if pol.get(key) is None or storage_root is None:
            continue
        await _files(conn, storage_root, output, before(key), rep, dry_run)
    rep.seconds = asyncio.get_running_loop().time() - started
    return rep


async def _simple(
    conn: db.AsyncConn, name: str, before: datetime, batch: int, dry_run: bool
) -> int:
    params = {"before": before, "batch": batch}
    if dry_run:
        row = await db.row(conn, q(f"{name}_count"), params)
        return int(row["n"]) if row else 0
    total = 0
    while True:
        async with conn.transaction():
            n = len(await db.rows(conn, q(name), params))
        total += n
        if n < batch:
            return total


async def _files(
    conn: db.AsyncConn,
    root: Path,
    output: str,
    before: datetime,
    rep: Report,
    dry_run: bool,
) -> None:
    """Remove an output file of items that succeeded before the cutoff. A path that leaves the
    storage root is refused (reported), never followed."""
    rows = await db.rows(conn, q("media_files_expired"), {"output": output, "before": before})
    for r in rows:
        try:
            path = resolve(root, str(r["rel"]))
        except ValueError as exc:  # a hostile or broken path: report it, go on
            rep.errors.append(f"media {r['id']}: {output} path refused: {exc}")
            continue
        size = path.stat().st_size if path.is_file() else 0
        rep.files[output] = rep.files.get(output, 0) + 1
        rep.bytes_freed += size
        if dry_run:
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            rep.errors.append(f"media {r['id']}: cannot remove {output}: {exc.strerror}")
            continue
        await conn.execute(q("media_output_pruned"), {"id": r["id"], "output": output})


async def run_daily(
    conn: db.AsyncConn,
    configured: dict[str, Any],
    storage_root: Path | None,
    today: date | None = None,
) -> Report | None:
    """Today's prune, if no other process has claimed it (None then)."""
    day = today or datetime.now(UTC).date()
    claimed = await db.rows(
        conn, q("maintenance_claim"), {"job": "prune", "day": day, "runner": audit.actor()}
    )
    if not claimed:
        return None
    rep = await prune(conn, configured, storage_root)
    await conn.execute(
        q("maintenance_done"), {"job": "prune", "day": day, "result": Jsonb(rep.as_dict())}
    )
    return rep
