"""Sources that the fleet polls by itself (podcast feeds): created with a schedule that
enqueues `poll_source`; a poll's result is recorded in the transaction that completes it, so
each new episode becomes a media item exactly once. The first poll takes only the latest N
entries (the backlog is remembered as skipped); later polls take every new entry."""

from __future__ import annotations

import dataclasses
from typing import Any

from psycopg.types.json import Jsonb

from control.core import db, pipeline, schedules
from control.core.errors import UsageError
from control.core.queue import ClaimedTask, Queue, TaskSpec
from control.core.sql import q

DEFAULT_LATEST = 5
SKIPPED_MAX = 5000  # guids remembered as backlog; a feed longer than this is rare


def schedule_name(source_name: str) -> str:
    return f"source:{source_name}"


async def add(
    conn: db.AsyncConn,
    *,
    name: str,
    url: str,
    options: dict[str, Any],
    every_s: float | None,
    cron: str | None,
) -> int:
    """A new source, its schedule, and a first poll now; returns the source id."""
    spec = schedules.Schedule(
        schedule_name(name),
        "poll_source",
        {},
        cron=cron,
        every_s=every_s or (None if cron else 3600),
    )
    schedules.validate(spec)
    async with conn.transaction():
        rows = await db.rows(conn, q("source_by_name"), {"name": name})
        if rows:
            raise UsageError(f"a source named {name!r} exists: give another --name")
        [sid] = await db.ids(
            conn,
            q("source_insert"),
            {"name": name, "url": url, "kind": "podcast", "options": Jsonb(options)},
        )
        payload = {"source_id": sid, "url": url}
        await schedules.put(conn, dataclasses.replace(spec, payload=payload))
        await Queue(conn).enqueue([TaskSpec("poll_source", payload=payload)])
    return sid


async def poll_now(conn: db.AsyncConn, name: str) -> int:
    src = await by_name(conn, name)
    payload = {
        "source_id": src["id"],
        "url": src["url"],
        "etag": src["etag"],
        "last_modified": src["last_modified"],
    }
    [done] = await Queue(conn).enqueue([TaskSpec("poll_source", payload=payload)])
    return done.id


async def by_name(conn: db.AsyncConn, name: str) -> dict[str, Any]:
    rows = await db.rows(conn, q("source_by_name"), {"name": name})
    if not rows:
        raise UsageError(f"no source {name!r}: see `contentctl source list`")
    return rows[0]


async def remove(conn: db.AsyncConn, name: str) -> None:
    src = await by_name(conn, name)
    async with conn.transaction():
        await conn.execute(q("schedule_delete"), {"name": schedule_name(src["name"])})
        await conn.execute(q("source_delete"), {"id": src["id"]})


async def on_complete(queue: Queue, done: list[tuple[ClaimedTask, dict[str, Any] | None]]) -> None:
    """The agent's completion hook: a media stage advances its item, a poll records its finds."""
    media = [(t, r) for t, r in done if t.media_id is not None]
    polls = [(t, r) for t, r in done if t.type == "poll_source"]
    if media:
        await pipeline.advance(queue, media)
    if polls:
        await record(queue, polls)


async def record(queue: Queue, done: list[tuple[ClaimedTask, dict[str, Any] | None]]) -> None:
    conn = queue.conn
    for task, result in done:
        result = result or {}
        src = await db.row(conn, q("source_lock"), {"id": task.payload.get("source_id")})
        if src is None:
            continue  # removed meanwhile
        found = 0
        options = dict(src["options"] or {})
        if result.get("status") != 304:
            entries = list(result.get("entries") or [])
            skipped = set(options.get("skipped") or [])
            if src["polls"] == 0:  # the backlog: only the latest N
                latest = int(options.get("latest") or DEFAULT_LATEST)
                backlog = entries[:-latest] if latest < len(entries) else []
                skipped |= {e["guid"] for e in backlog}
                options["skipped"] = sorted(skipped)[:SKIPPED_MAX]
                entries = entries[len(backlog) :]
            for entry in entries:
                if entry["guid"] in skipped:
                    continue
                found += await _add_episode(queue, src, entry)
        await conn.execute(
            q("source_polled"),
            {
                "id": src["id"],
                "etag": result.get("etag"),
                "last_modified": result.get("last_modified"),
                "found": found,
            },
        )
        if options != (src["options"] or {}):
            await conn.execute(q("source_options"), {"id": src["id"], "options": Jsonb(options)})
        # the next scheduled poll asks conditionally (written only when the validators moved)
        etag = result.get("etag") or src["etag"]
        modified = result.get("last_modified") or src["last_modified"]
        if (etag, modified) != (src["etag"], src["last_modified"]):
            payload = {
                "source_id": src["id"],
                "url": src["url"],
                "etag": etag,
                "last_modified": modified,
            }
            await conn.execute(
                q("schedule_payload"),
                {"name": schedule_name(src["name"]), "payload": Jsonb(payload)},
            )


async def _add_episode(queue: Queue, src: dict[str, Any], entry: dict[str, Any]) -> int:
    conn = queue.conn
    opts = dict(src["options"] or {})
    meta = {k: entry.get(k) for k in ("title", "channel", "duration_s", "upload_date", "guid")}
    meta["description"] = entry.get("description")
    meta["source_id"] = src["id"]
    row = await db.row(
        conn,
        q("insert_media_item"),
        {
            "kind": "podcast",
            "source": entry["url"],
            "unique_key": f"podcast:{src['url']}#{entry['guid']}",
            "feed_url": src["url"],
            "title": meta["title"],
            "channel": meta["channel"],
            "duration_s": meta["duration_s"],
            "upload_date": meta["upload_date"],
            "metadata": Jsonb(meta),
            "options": Jsonb({k: opts[k] for k in ("langs", "priority") if k in opts}),
        },
    )
    if row is None:
        return 0  # seen before (added by hand, or another source)
    await conn.execute(q("set_media_source"), {"id": row["id"], "source_id": src["id"]})
    await queue.enqueue(pipeline.first_specs(row, "download"))
    return 1
