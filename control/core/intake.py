"""Sources that the fleet polls by itself (podcast feeds, channels and playlists): created with
a schedule that enqueues `poll_source`; a poll's result is recorded in the transaction that
completes it, so each new entry becomes a media item exactly once (a feed's episode by feed URL
and guid, a video by yt-dlp's extractor and id, so a video added by hand is not added again).
The first poll takes only the latest N entries (the backlog is remembered as skipped); later
polls take every new entry. A poll that finds nothing new writes nothing to the source."""

from __future__ import annotations

import dataclasses
from typing import Any

from psycopg.types.json import Jsonb

from control.core import db, names, pipeline, schedules, ytdlp
from control.core.errors import UsageError
from control.core.queue import ClaimedTask, Queue, TaskSpec
from control.core.sql import q

DEFAULT_LATEST = 5
SKIPPED_MAX = 5000  # guids remembered as backlog; a feed longer than this is rare


def schedule_name(source_name: str) -> str:
    return f"source:{source_name}"


def poll_schedule(
    name: str, every_s: float | None, cron: str | None, timezone: str = "UTC"
) -> schedules.Schedule:
    """A source's schedule (default: hourly), validated: a bad cron expression is refused
    before anything is read or written."""
    spec = schedules.Schedule(
        schedule_name(name),
        "poll_source",
        {},
        cron=cron,
        every_s=every_s or (None if cron else 3600),
        timezone=timezone,
    )
    schedules.validate(spec)
    return spec


async def add(
    conn: db.AsyncConn,
    *,
    name: str,
    url: str,
    kind: str,
    options: dict[str, Any],
    spec: schedules.Schedule,
) -> int:
    """A new source, its schedule, and a first poll now; returns the source id."""
    names.label(name, "source name")
    async with conn.transaction():
        rows = await db.rows(conn, q("source_by_name"), {"name": name})
        if rows:
            raise UsageError(f"a source named {name!r} exists: give another --name")
        if await db.rows(conn, q("source_by_url"), {"url": url}):
            raise UsageError(f"{url} is a source already: see `contentctl source list`")
        [sid] = await db.ids(
            conn,
            q("source_insert"),
            {"name": name, "url": url, "kind": kind, "options": Jsonb(options)},
        )
        payload = poll_payload({"id": sid, "url": url, "kind": kind, "options": options})
        await schedules.put(conn, dataclasses.replace(spec, payload=payload))
        await Queue(conn).enqueue([TaskSpec("poll_source", payload=payload)])
    return sid


def poll_payload(src: dict[str, Any]) -> dict[str, Any]:
    """What a poll task needs: the URL, the feed's validators, a listing's yt-dlp options."""
    payload: dict[str, Any] = {"source_id": src["id"], "url": src["url"]}
    if src["kind"] == "playlist":
        options = src.get("options") or {}
        payload["kind"] = "playlist"
        payload["scan"] = max(ytdlp.FLAT_SCAN, int(options.get("latest") or DEFAULT_LATEST))
        if options.get("ytdlp"):
            payload["ytdlp"] = options["ytdlp"]
    elif src.get("etag") or src.get("last_modified"):
        payload["etag"] = src.get("etag")
        payload["last_modified"] = src.get("last_modified")
    return payload


async def poll_now(conn: db.AsyncConn, name: str) -> int:
    src = await by_name(conn, name)
    [done] = await Queue(conn).enqueue([TaskSpec("poll_source", payload=poll_payload(src))])
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
        if result.get("status") == 304:
            continue  # unchanged: nothing to write (the poll task itself says when it ran)
        src = await db.row(conn, q("source_get"), {"id": task.payload.get("source_id")})
        if src is None:
            continue  # removed meanwhile
        found = 0
        options = dict(src["options"] or {})
        taken = ytdlp.title_filter(options.get("ytdlp") or {})
        entries = [e for e in result.get("entries") or [] if taken(e.get("title"))]
        skipped = set(options.get("skipped") or [])
        if src["polls"] == 0:  # the backlog: only the latest N, or those since a date
            backlog = _backlog(entries, options)
            skipped |= {e["guid"] for e in backlog}
            options["skipped"] = sorted(skipped)[:SKIPPED_MAX]
        for entry in entries:
            if entry["guid"] in skipped:
                continue
            found += await _add_entry(queue, src, entry)
        etag = result.get("etag") or src["etag"]
        modified = result.get("last_modified") or src["last_modified"]
        moved = (etag, modified) != (src["etag"], src["last_modified"])
        if not (found or moved or src["polls"] == 0):
            continue  # nothing new: no write (a fleet polls hundreds of these an hour)
        await conn.execute(
            q("source_polled"),
            {"id": src["id"], "etag": etag, "last_modified": modified, "found": found},
        )
        if options != (src["options"] or {}):
            await conn.execute(q("source_options"), {"id": src["id"], "options": Jsonb(options)})
        if moved and src["kind"] != "playlist":  # the next scheduled poll asks conditionally
            await conn.execute(
                q("poll_validators"),
                {"source_id": src["id"], "etag": etag, "last_modified": modified},
            )


def _backlog(entries: list[dict[str, Any]], options: dict[str, Any]) -> list[dict[str, Any]]:
    """What a first poll leaves alone: entries before `since` (undated ones too: a listing
    without dates must not turn into thousands of downloads), else all but the latest N."""
    if options.get("since"):
        return [e for e in entries if (e.get("upload_date") or "") < options["since"]]
    latest = int(options.get("latest") or DEFAULT_LATEST)
    return entries[:-latest] if latest < len(entries) else []


async def _add_entry(queue: Queue, src: dict[str, Any], entry: dict[str, Any]) -> int:
    conn = queue.conn
    opts = dict(src["options"] or {})
    video = src["kind"] == "playlist"
    meta = {k: entry.get(k) for k in ("title", "channel", "duration_s", "upload_date", "guid")}
    meta["description"] = entry.get("description")
    meta["source_id"] = src["id"]
    row = await db.row(
        conn,
        q("insert_media_item"),
        {
            "kind": "youtube" if video else "podcast",
            "source": entry["url"],
            # a video is one item however it was found; an episode is its feed's guid
            "unique_key": entry["guid"] if video else f"podcast:{src['url']}#{entry['guid']}",
            "feed_url": None if video else src["url"],
            "title": meta["title"],
            "channel": meta["channel"],
            "duration_s": meta["duration_s"],
            "upload_date": meta["upload_date"],
            "metadata": Jsonb(meta),
            "options": Jsonb({k: opts[k] for k in ("langs", "priority", "ytdlp") if opts.get(k)}),
            "source_id": src["id"],
        },
    )
    if row is None:
        return 0  # seen before (added by hand, or another source)
    await queue.enqueue(pipeline.first_specs(row, "download"))
    return 1
