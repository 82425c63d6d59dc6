"""add, media, media retry, reconcile."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from control.cli import output
from control.cli.commands.common import Session, task_id
from control.core import db, intake, storage_health, urls
from control.core.errors import EXIT_FAILED, EXIT_OK, ContentctlError, UsageError
from control.core.inventory import Inventory
from control.core.queue import Queue
from control.core.readmodels import MediaView
from control.core.settings import storage_root
from control.head import media, reconcile, status

log = logging.getLogger("contentctl")


def _langs(text: str | None, default: list[str]) -> list[str]:
    if text is None:
        return default
    langs = [p.strip().lower() for p in text.split(",") if p.strip()]
    bad = [p for p in langs if not p.isalpha()]
    if bad:
        raise UsageError(f"--lang: {bad[0]!r} is not a language code: use e.g. --lang en,de,he")
    return langs


async def cmd_add(args: argparse.Namespace) -> int:
    # what the item tells its transcription: checked before anything starts
    language = None if args.language is None else media.checked_language(args.language)
    prompt = None if args.prompt is None else media.checked_prompt(args.prompt)
    s = Session(args)
    root = storage_root(s.inventory.storage_root)
    opts = media.options(
        _langs(args.lang, list(s.inventory.pipeline.get("langs") or [])),
        s.inventory.pipeline,
        args.priority,
        language=language,
        prompt=prompt,
    )
    kind = media.classify(args.source, args.podcast)
    if kind != "file":
        urls.check_added(args.source, "the feed URL" if kind == "podcast" else "the URL")
    private = bool(s.inventory.pipeline.get("allow_private_networks"))
    episodes = (
        await asyncio.to_thread(media.fetch_feed, args.source, allow_private=private)
        if kind == "podcast"
        else []
    )
    async with s.database() as conn:
        if kind == "podcast":
            added = await media.add_podcast(conn, args.source, episodes, opts)
        elif kind == "youtube":
            added = [await media.add_url(conn, args.source, opts)]
        else:
            added = [await media.add_file(conn, Path(args.source).expanduser(), root, opts)]
        if args.wait:
            return await _wait_media(conn, root, [a.id for a in added], args.json, s.inventory)

    def said(_: object) -> None:
        for a in added:
            what = "added" if a.created else "already known"
            print(f"media {a.id} {what}{f': {a.title}' if a.title else ''}")
        if kind == "podcast" and not added:
            print(f"no episodes with audio in {args.source}")

    output.render(
        args, [{"id": a.id, "created": a.created, "title": a.title} for a in added], text=said
    )
    return EXIT_OK


EXPLAIN_AFTER_S = 3.0  # `add --wait`: a stage waiting this long without a change is explained


async def _wait_media(
    conn: db.AsyncConn, root: Path, ids: list[int], as_json: bool, inventory: Inventory
) -> int:
    bars = output.LiveProgress(enabled=not as_json)
    with bars:
        views = await _watch(conn, root, ids, inventory, bars)
    if as_json:
        output.emit_json(views)
    failed = [v for v in views if v.state != "succeeded"]
    for v in failed:
        print(f"media {v.id} {v.state}: {v.error or 'see contentctl media'}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


async def _watch(
    conn: db.AsyncConn,
    root: Path,
    ids: list[int],
    inventory: Inventory,
    bars: output.LiveProgress,
) -> list[MediaView]:
    """Follow the items until each is done: a bar (or a line) per item as its stages move,
    and after EXPLAIN_AFTER_S without change, why the waiting stage is not taken."""
    shown: dict[int, str] = {}
    explained: dict[str, str] = {}
    changed_at = time.monotonic()
    while True:
        views = [await media.item(conn, root, i) for i in ids]
        for v in views:
            line = media.media_line(v)
            stages = list(v.stages.values())
            done = sum(s == "succeeded" for s in stages)
            bars.update(str(v.id), line, done, max(1, len(stages)))
            if shown.get(v.id) != line:
                shown[v.id] = line
                changed_at = time.monotonic()
        if all(v.finished for v in views):
            return views
        if time.monotonic() - changed_at > EXPLAIN_AFTER_S:
            hosts = await status.hosts(conn, inventory)
            for task_type in await Queue(conn).media_waiting_types(ids):
                why = status.why_waiting(task_type, hosts)
                if why and explained.get(task_type) != why:
                    bars.note(f"waiting: {task_type}: {why}")
                    explained[task_type] = why
        await asyncio.sleep(0.5)


async def cmd_media(args: argparse.Namespace) -> int:
    s = Session(args)
    root = storage_root(s.inventory.storage_root)
    words = list(args.words)
    retry = bool(words) and words[0] == "retry"
    if retry:
        words = words[1:]
    if len(words) > 1 or (retry and not words):
        raise UsageError("usage: contentctl media [ID] | media retry ID [--from STAGE]")
    try:
        media_id = task_id(words[0]) if words else None
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"media: {exc}") from None
    if args.from_stage and not retry:
        raise UsageError("--from goes with `media retry ID`")
    async with s.database() as conn:
        if retry:
            assert media_id is not None
            done = await media.retry(conn, media_id, args.from_stage)
            output.render(
                args,
                done,
                text=f"media {media_id}: re-running from {done['from']} "
                f"(generation {done['generation']}, {done['tasks']} task(s))",
            )
            return EXIT_OK
        if media_id is not None:
            one = await media.item(conn, root, media_id)
            output.render(args, one, text=output.print_media_item)
            return EXIT_OK
        source_id = None
        if args.source:
            source_id = int((await intake.by_name(conn, args.source))["id"])
        many = await media.items(conn, root, limit=args.limit, source_id=source_id)
    output.render(args, many, text=output.print_media_list)
    return EXIT_OK


async def cmd_reconcile(args: argparse.Namespace) -> int:
    s = Session(args)
    root = storage_root(s.inventory.storage_root)
    async with s.database() as conn:
        # Judging the database by an unmounted NAS would call every file missing and re-run
        # every item (and --fix used to create the root and re-queue from download).
        expected = await storage_health.fleet_storage_id(conn)
        health = storage_health.check(root, expected)
        if not health.ok:
            raise ContentctlError(
                f"reconcile: storage unavailable: {health.error}: mount it and try again "
                "(nothing was compared or changed)"
            )
        findings = await reconcile.run(conn, root, fix=args.fix)
    if args.json:
        output.emit_json(findings)
    elif not findings:
        print(f"database and storage ({root}) agree")
    else:
        for f in findings:
            how = f": {f['fix']}" if f.get("fix") else ""
            done = f" [fixed{how}]" if f.get("fixed") else (f" [{f['fix']}]" if how else "")
            print(f"{f['kind']:16} {f['detail']}{done}")
        orphans = sum(f["kind"] == "orphan_dir" for f in findings)
        repairable = len(findings) - orphans
        if not args.fix and repairable:
            print(
                f"{len(findings)} finding(s); `contentctl reconcile --fix` repairs "
                f"{'them' if not orphans else f'{repairable} of them'}"
            )
        if orphans:  # never deleted by contentctl: they may be someone's
            print(
                f"{orphans} folder(s) belong to no media item and are left alone: check them "
                "and remove them by hand"
            )
    unfixed = [f for f in findings if not f.get("fixed") and f["kind"] != "orphan_dir"]
    return EXIT_FAILED if unfixed else EXIT_OK
