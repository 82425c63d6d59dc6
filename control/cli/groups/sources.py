"""`source add|list|poll|pause|resume|remove`: feeds and playlists."""

from __future__ import annotations

from control.cli.declare import (
    PRIORITY_MAX,
    Commands,
    _date,
    _duration,
    _positive,
    _whole,
    item_told_flags,
    json_flag,
)


def configure(c: Commands) -> None:
    srs = c.group(
        "source",
        "feeds, channels and playlists the fleet polls by itself; each new entry becomes an "
        "item once",
        (
            "source add https://example.org/feed.xml --podcast --every 1h",
            "source add https://www.youtube.com/@channel/videos --latest 3 --every 6h",
            "source list",
        ),
    )
    sp = c.action(
        srs,
        "add",
        "sources:cmd_source_add",
        "add a feed, channel or playlist: polled now, then on its schedule (default hourly)",
        (
            "source add https://example.org/feed.xml --podcast --latest 2 --lang de",
            "source add https://www.youtube.com/playlist?list=PL... --reject-title '#shorts'",
        ),
        audit="source add",
    )
    sp.add_argument(
        "url", metavar="URL", help="a podcast feed (with --podcast), a channel or a playlist"
    )
    sp.add_argument(
        "--podcast", action="store_true", help="URL is a podcast feed (else: yt-dlp lists it)"
    )
    when = sp.add_mutually_exclusive_group()
    when.add_argument("--every", type=_duration, metavar="DURATION", help="poll every 30m, 2h...")
    when.add_argument("--cron", metavar="EXPR", help="poll on a cron schedule (in --timezone)")
    sp.add_argument(
        "--timezone",
        metavar="ZONE",
        default="UTC",
        help="the time zone a --cron is read in, e.g. America/New_York (default UTC)",
    )
    sp.add_argument(
        "--latest",
        type=_positive("--latest", 10_000),
        default=None,
        help=f"the first poll takes only the latest N entries (default {5})",
    )
    sp.add_argument(
        "--since",
        type=_date,
        metavar="DATE",
        help="the first poll takes only entries published since YYYY-MM-DD (undated: skipped)",
    )
    yt = sp.add_argument_group("yt-dlp options (override the inventory's pipeline.ytdlp)")
    yt.add_argument("--format", metavar="SELECTOR", help="yt-dlp format, e.g. bestaudio")
    yt.add_argument("--cookies", metavar="PATH", help="a cookies.txt on the workers (never copied)")
    yt.add_argument("--rate-limit", metavar="RATE", help="download rate cap: 500K, 2M")
    yt.add_argument(
        "--sleep", type=float, metavar="SECONDS", help="wait this long before each download"
    )
    yt.add_argument("--match-title", metavar="REGEX", help="take only entries whose title matches")
    yt.add_argument("--reject-title", metavar="REGEX", help="skip entries whose title matches")
    sp.add_argument("--lang", metavar="LANGS", help="translate its items into these")
    item_told_flags(sp)
    sp.add_argument(
        "--priority",
        type=_whole("--priority", -PRIORITY_MAX, PRIORITY_MAX),
        default=0,
        help="its items' priority (default 0)",
    )
    sp.add_argument("--name", help="a short name (default: from the URL)")
    json_flag(sp)
    sp = c.action(
        srs, "list", "sources:cmd_source_list", "every source and its last poll", ("source list",)
    )
    json_flag(sp)
    for name, text in (
        ("poll", "poll now"),
        ("pause", "stop polling"),
        ("resume", "poll again"),
        ("remove", "forget the source (its items stay)"),
    ):
        sp = c.action(
            srs,
            name,
            "sources:cmd_source_action",
            text,
            (f"source {name} my-feed",),
            audit=f"source {name}",
        )
        sp.add_argument("name", metavar="ID|NAME", help="the source's id or name")
        json_flag(sp)
