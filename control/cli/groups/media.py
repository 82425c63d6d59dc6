"""`add`, `media`, `reconcile`: the media pipeline."""

from __future__ import annotations

import argparse

from control.cli.declare import (
    PRIORITY_MAX,
    Commands,
    _whole,
    item_told_flags,
    json_flag,
    limit_flag,
)
from control.core.stages import stages as stage_names


def _media_retry(args: argparse.Namespace) -> str | None:
    """`media` is an action only as `media retry ID`."""
    return "media retry" if (getattr(args, "words", None) or [""])[0] == "retry" else None


def _reconcile_fix(args: argparse.Namespace) -> str | None:
    """`reconcile` is an action only with `--fix`."""
    return "reconcile --fix" if getattr(args, "fix", False) else None


def configure(c: Commands) -> None:
    sp = c.add(
        "add",
        "media:cmd_add",
        "add a video URL, a podcast feed (--podcast) or a local file",
        (
            "add https://www.youtube.com/watch?v=ID --lang de,he --wait",
            "add https://example.org/feed.xml --podcast",
            "add ~/talks/keynote.mp4",
        ),
        audit="add",
    )
    sp.add_argument("source", metavar="SOURCE", help="a video URL, a feed URL, or a file")
    sp.add_argument("--podcast", action="store_true", help="SOURCE is a podcast feed")
    sp.add_argument("--lang", metavar="LANGS", help="translate into these, e.g. en,de,he")
    item_told_flags(sp)
    sp.add_argument(
        "--priority",
        type=_whole("--priority", -PRIORITY_MAX, PRIORITY_MAX),
        default=0,
        help="higher runs first (default 0)",
    )
    sp.add_argument("--wait", action="store_true", help="show progress until done or failed")
    json_flag(sp)

    sp = c.add(
        "media",
        "media:cmd_media",
        "media items and their stages; `media retry ID [--from S]`",
        ("media", "media 7 --json", "media retry 7 --from transcribe"),
        audit=_media_retry,
    )
    sp.add_argument("words", nargs="*", metavar="[retry] ID", help="an item, or retry ITEM")
    sp.add_argument(
        "--from",
        dest="from_stage",
        metavar="STAGE",
        help="with retry: the stage to start from (" + ", ".join(stage_names()) + ")",
    )
    limit_flag(sp)
    sp.add_argument("--source", metavar="ID|NAME", help="only the items this source found")
    json_flag(sp, "machine-readable (keys in docs/contract.md)")

    sp = c.add(
        "reconcile",
        "media:cmd_reconcile",
        "compare the database with the storage root",
        ("reconcile", "reconcile --fix"),
        audit=_reconcile_fix,
    )
    sp.add_argument("--fix", action="store_true", help="re-queue, re-run or record")
    json_flag(sp)
