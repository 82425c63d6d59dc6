"""`source add | list | poll | pause | resume | remove`: feeds the fleet polls by itself."""

from __future__ import annotations

import argparse
import asyncio
import re
from typing import Any

from control.cli import output
from control.cli.commands.common import Session
from control.cli.commands.media import _langs
from control.core import db, feeds, intake, schedules, urls, ytdlp
from control.core.errors import EXIT_OK, ContentctlError, UsageError
from control.core.sql import q
from control.head import media


async def cmd_source_add(args: argparse.Namespace) -> int:
    urls.check_added(args.url, "the feed URL" if args.podcast else "the channel or playlist URL")
    if args.latest is not None and args.latest < 1:
        raise UsageError("--latest must be at least 1")
    told = {  # what each item's transcription is told, checked before the URL is read
        k: check(v)
        for k, v, check in (
            ("language", args.language, media.checked_language),
            ("prompt", args.prompt, media.checked_prompt),
        )
        if v is not None
    }
    given = {
        "format": args.format,
        "cookies": args.cookies,
        "rate_limit": args.rate_limit,
        "sleep_s": args.sleep,
        "match_title": args.match_title,
        "reject_title": args.reject_title,
    }
    try:
        yt_options = ytdlp.check(given, ytdlp.SOURCE_KEYS)
    except ytdlp.BadOption as exc:
        flag = {"sleep_s": "sleep"}.get(exc.key, exc.key).replace("_", "-")
        raise UsageError(f"--{flag}: {exc}") from None
    name = args.name or re.sub(r"[^A-Za-z0-9_.-]+", "-", args.url.split("://", 1)[-1]).strip("-")
    s = Session(args)
    kind = "podcast" if args.podcast else "playlist"
    spec = intake.poll_schedule(name, args.every, args.cron, args.timezone)
    # read it once here, so a URL that is no feed, no channel and no playlist is refused now
    private = bool(s.inventory.pipeline.get("allow_private_networks"))
    found = await asyncio.to_thread(_probe, args.url, kind, yt_options, private)
    options: dict[str, Any] = {
        "langs": _langs(args.lang, list(s.inventory.pipeline.get("langs") or [])),
        "priority": args.priority,
        "latest": args.latest or intake.DEFAULT_LATEST,
    }
    options.update(told)
    if args.since:
        options["since"] = args.since
    if yt_options:
        options["ytdlp"] = yt_options
    async with s.database() as conn:
        sid = await intake.add(
            conn,
            name=name,
            url=args.url,
            kind=kind,
            options=options,
            spec=spec,
        )
    output.render(
        args,
        {"id": sid, "name": name, "url": args.url, "kind": kind},
        text=f"source {sid} ({name}: {found}) added; polling it now",
    )
    return EXIT_OK


def _probe(url: str, kind: str, yt_options: dict[str, Any], allow_private: bool) -> str:
    """What the source holds (`podcast "Title", 3 episodes`), or one line saying why this
    URL cannot be a source."""
    if kind == "podcast":
        try:
            got = feeds.fetch(url, allow_private=allow_private)
            eps = feeds.episodes(url, got.body)
        except ContentctlError as exc:
            raise UsageError(str(exc)) from None
        channel = next((e.get("channel") for e in eps if e.get("channel")), None)
        return f"podcast{f' {channel!r}' if channel else ''}, {len(eps)} episodes"
    import yt_dlp

    try:
        # every hop yt-dlp takes (no database connection is open during the probe)
        with urls.checked_resolver(allow_private=allow_private):
            got_list = ytdlp.playlist(url, 1, ytdlp.download_params({}, yt_options))
    except ytdlp.NotAPlaylist:
        raise UsageError(
            f"{url} is one video, not a channel or playlist: `contentctl add URL` adds it "
            "(a podcast feed: add --podcast)"
        ) from None
    except yt_dlp.utils.DownloadError as exc:
        raise UsageError(
            f"{url} cannot be listed ({ytdlp.error_line(exc)}): check the URL"
        ) from None
    title = got_list.get("title")
    return f"playlist{f' {title!r}' if title else ''}"


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
    output.render(
        args,
        docs,
        [
            ("id", lambda d: d["id"]),
            ("name", lambda d: d["name"]),
            ("state", lambda d: "paused" if d["paused"] else "active"),
            ("items", lambda d: d["items_found"]),
            (
                "last poll",
                lambda d: (
                    d["last_polled_at"].isoformat(timespec="seconds")
                    if d["last_polled_at"]
                    else "-"
                ),
            ),
            ("last error", lambda d: d["last_error"] or ""),
        ],
        empty="no sources: `contentctl source add FEED_URL --podcast` or a channel's URL",
    )
    return EXIT_OK


async def cmd_source_action(args: argparse.Namespace) -> int:
    s = Session(args)
    action = args.source_command
    async with s.database() as conn:
        src = await intake.by_name(conn, args.name)
        doc: dict[str, Any] = {"id": src["id"], "name": src["name"], "action": action}
        if action == "poll":
            doc["task_id"] = await intake.poll_now(conn, args.name)
            said = f"poll task {doc['task_id']} enqueued"
        elif action == "remove":
            await intake.remove(conn, args.name)
            said = "removed (its items stay)"
        else:
            await schedules.pause(conn, intake.schedule_name(src["name"]), action == "pause")
            said = f"{action}d"
    output.render(args, doc, text=f"source {src['name']}: {said}")
    return EXIT_OK
