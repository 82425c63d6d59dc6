"""`source add | list | poll | pause | resume | remove`: feeds the fleet polls by itself."""

from __future__ import annotations

import argparse
import re

from control.cli import output
from control.cli.commands.common import Session
from control.cli.commands.media import _langs
from control.core import db, intake, schedules, urls
from control.core.errors import EXIT_OK, UsageError
from control.core.sql import q


async def cmd_source_add(args: argparse.Namespace) -> int:
    if not args.podcast:
        raise UsageError(
            "only podcast feeds can be sources yet: add --podcast (channels and playlists: "
            "`contentctl add URL` per video)"
        )
    urls.check_added(args.url, "the feed URL")
    if args.latest is not None and args.latest < 1:
        raise UsageError("--latest must be at least 1")
    name = args.name or re.sub(r"[^A-Za-z0-9_.-]+", "-", args.url.split("://", 1)[-1]).strip("-")
    s = Session(args)
    options = {
        "langs": _langs(args.lang, list(s.inventory.pipeline.get("langs") or [])),
        "priority": args.priority,
        "latest": args.latest or intake.DEFAULT_LATEST,
    }
    async with s.database() as conn:  # intake.add validates the schedule before any write
        sid = await intake.add(
            conn, name=name, url=args.url, options=options, every_s=args.every, cron=args.cron
        )
    if args.json:
        output.emit_json({"id": sid, "name": name, "url": args.url})
    else:
        print(f"source {sid} ({name}) added; polling it now")
    return EXIT_OK


async def cmd_source_list(args: argparse.Namespace) -> int:
    s = Session(args)
    async with s.database() as conn:
        rows = await db.rows(conn, q("sources_all"))
    docs = [
        {
            "id": r["id"],
            "name": r["name"],
            "url": r["url"],
            "kind": r["kind"],
            "paused": bool(r["paused"]),
            "polls": r["polls"],
            "items_found": r["items_found"],
            "last_polled_at": r["last_polled_at"],
            "next_poll_at": r["next_run_at"],
            "last_error": r["last_error"],
        }
        for r in rows
    ]
    if args.json:
        output.emit_json(docs)
        return EXIT_OK
    if not docs:
        print("no sources: `contentctl source add FEED_URL --podcast`")
        return EXIT_OK
    table = [
        [
            d["id"],
            d["name"],
            "paused" if d["paused"] else "active",
            d["items_found"],
            d["last_polled_at"].isoformat(timespec="seconds") if d["last_polled_at"] else "-",
            d["last_error"] or "",
        ]
        for d in docs
    ]
    print(output.table(["id", "name", "state", "items", "last poll", "last error"], table))
    return EXIT_OK


async def cmd_source_action(args: argparse.Namespace) -> int:
    s = Session(args)
    action = args.source_command
    async with s.database() as conn:
        src = await intake.by_name(conn, args.name)
        if action == "poll":
            task = await intake.poll_now(conn, args.name)
            print(f"source {src['name']}: poll task {task} enqueued")
        elif action == "remove":
            await intake.remove(conn, args.name)
            print(f"source {src['name']}: removed (its items stay)")
        else:
            await schedules.pause(conn, intake.schedule_name(src["name"]), action == "pause")
            print(f"source {src['name']}: {action}d")
    return EXIT_OK
