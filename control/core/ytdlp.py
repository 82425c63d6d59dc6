"""What contentctl asks of yt-dlp, in one place: a video's identity (extractor and id, matched
offline), a playlist's entries by flat extraction (no download), and the options an operator
may set per fleet (`pipeline.ytdlp`) and per source: format, cookies file (a path on the
worker, never its contents), rate limit, sleep between downloads, and title filters.

yt-dlp is imported inside the functions that need it: it is heavy, and the head's commands
that never touch a video should not pay for it."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from typing import Any

# key: (type, what it is); the same names in the inventory's `pipeline.ytdlp` and on a source
FLEET_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "format": (str, "yt-dlp's format selector, e.g. bestaudio[abr<=128]/bestaudio"),
    "cookies": (str, "a cookies.txt path on the worker (absolute or ~)"),
    "rate_limit": ((str, int), "bytes per second: 500K, 2M or a number"),
    "sleep_s": ((int, float), "seconds to wait before each download"),
}
SOURCE_KEYS = {
    **FLEET_KEYS,
    "match_title": (str, "a regular expression an entry's title must match"),
    "reject_title": (str, "a regular expression that skips an entry whose title matches"),
}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]?)i?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
FLAT_SCAN = 200  # entries a later poll reads from the top of a channel or playlist


def rate_bytes(value: str | int) -> int:
    """`2M` -> 2097152; a number is bytes per second."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError("must be at least 1 byte per second")
        return value
    m = _RATE.match(str(value))
    if not m:
        raise ValueError(f"not a rate: {value!r} (give 500K, 2M or a number of bytes)")
    return max(1, int(float(m.group(1)) * _UNITS[m.group(2).upper()]))


class BadOption(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def check(options: dict[str, Any], keys: dict[str, tuple[Any, str]]) -> dict[str, Any]:
    """Options as given; BadOption names the key and what is wrong with it."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if key not in keys:
            raise BadOption(key, f"unknown key (known: {', '.join(sorted(keys))})")
        kind, what = keys[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BadOption(key, f"must be {what}")
        try:
            if key == "rate_limit":
                rate_bytes(value)
            elif key in ("match_title", "reject_title"):
                title_pattern(value)
            elif key == "sleep_s" and not 0 <= value <= 3600:
                raise ValueError("must be between 0 and 3600 seconds")
            elif key == "cookies" and not value.startswith(("/", "~")):
                raise ValueError("must be an absolute path on the worker (or start with ~)")
        except (ValueError, re.error) as exc:
            raise BadOption(key, str(exc)) from None
        out[key] = value
    return out


def download_params(fleet: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """YoutubeDL parameters from the fleet's options overridden by the item's (its source's)."""
    merged = {**fleet, **item}
    params: dict[str, Any] = {}
    if merged.get("format"):
        params["format"] = merged["format"]
    if merged.get("cookies"):
        params["cookiefile"] = os.path.expanduser(merged["cookies"])
    if merged.get("rate_limit"):
        params["ratelimit"] = rate_bytes(merged["rate_limit"])
    if merged.get("sleep_s"):
        params["sleep_interval"] = float(merged["sleep_s"])
    return params


PATTERN_MAX = 1000  # characters in a title pattern
TITLE_MAX = 2000  # characters of a title a pattern looks at


def title_pattern(text: str) -> Any:
    """An operator's title pattern, compiled by RE2: matching takes time linear in the title,
    whatever the pattern (Python's `re` backtracks: `(a+)+$` against 32 `a`s and a `!` held an
    agent's event loop for minutes). What RE2 cannot bound (backreferences, lookaround) is
    refused with the reason (ValueError)."""
    import re2

    if len(text) > PATTERN_MAX:
        raise ValueError(f"is {len(text)} characters long: at most {PATTERN_MAX}")
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(text, options=options)
    except re2.error as exc:
        why = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(
            f"cannot be matched in bounded time ({why}): use RE2 syntax, without "
            "backreferences or lookaround"
        ) from None


def title_filter(options: dict[str, Any]) -> Callable[[str | None], bool]:
    """Whether an entry with this title is taken (match_title, then reject_title)."""
    match = title_pattern(options["match_title"]) if options.get("match_title") else None
    reject = title_pattern(options["reject_title"]) if options.get("reject_title") else None

    def taken(title: str | None) -> bool:
        text = (title or "")[:TITLE_MAX]
        if match and not match.search(text):
            return False
        return not (reject and reject.search(text))

    return taken


def identity(url: str) -> str:
    """What makes two URLs the same video: yt-dlp's extractor and video id, matched offline
    (`youtu.be/ID`, `watch?v=ID&t=10` and a playlist entry are one item); the URL itself for
    anything only the generic extractor takes (a direct media URL)."""
    from yt_dlp.extractor import gen_extractor_classes

    for ie in gen_extractor_classes():
        if ie.ie_key() == "Generic" or not ie.suitable(url):
            continue
        try:
            video_id = ie.get_temp_id(url)
        except Exception:  # an extractor whose pattern has no id group
            video_id = None
        if video_id:
            return f"video:{ie.ie_key()}:{video_id}"
        break
    return f"url:{url}"


class NotAPlaylist(Exception):
    """The URL is one video (or nothing yt-dlp can list)."""


def playlist(url: str, limit: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A channel's or playlist's entries by flat extraction (nothing downloaded), in the
    listing's own order (a channel lists its newest first), at most `limit` of them:
    `{title, entries: [{guid, url, title, channel, duration_s, upload_date, description}]}`.
    Raises NotAPlaylist, or yt-dlp's DownloadError with the site's message."""
    import yt_dlp

    opts = {
        "extract_flat": "in_playlist",
        "skip_download": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "playlistend": limit,
        "socket_timeout": 30,
        "logger": QuietLogger(),
        # a listing has no format to choose; every other download option applies
        **{k: v for k, v in (params or {}).items() if k != "format"},
    }
    with yt_dlp.YoutubeDL(opts) as ydl:
        info = ydl.extract_info(url, download=False)
    if not info or info.get("_type") != "playlist":
        raise NotAPlaylist(url)
    out = []
    for entry in list(info.get("entries") or [])[:limit]:
        if not entry:
            continue
        link = entry.get("url") or entry.get("webpage_url") or entry.get("original_url")
        if not isinstance(link, str):
            continue
        if entry.get("ie_key") and entry.get("id"):
            guid = f"video:{entry['ie_key']}:{entry['id']}"
        else:
            guid = identity(link)
        date = entry.get("upload_date")
        out.append(
            {
                "guid": guid,
                "url": link,
                "title": entry.get("title"),
                "channel": entry.get("channel") or entry.get("uploader") or info.get("title"),
                "duration_s": entry.get("duration"),
                "upload_date": date if isinstance(date, str) else None,
                "description": (entry.get("description") or "")[:2000] or None,
            }
        )
    return {"title": info.get("title"), "entries": out}


def error_line(exc: BaseException) -> str:
    """The first line of a yt-dlp error, without its `ERROR:` prefix."""
    return re.sub(r"^ERROR:\s*", "", (str(exc).strip().splitlines() or [""])[0])


class QuietLogger:
    """yt-dlp's chatter stays out of our output (errors arrive as DownloadError); with
    `warnings`, its warnings go to our log (the task process's stderr)."""

    def __init__(self, warnings: bool = False) -> None:
        self.warnings = warnings

    def debug(self, msg: str) -> None:
        pass

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        if self.warnings:
            logging.getLogger("yt_dlp").warning(msg)

    def error(self, msg: str) -> None:
        pass
