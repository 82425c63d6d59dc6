"""Podcast feeds: fetched with conditional GET (ETag, Last-Modified) and read with feedparser
(RSS and Atom quirks we would otherwise re-learn). Shared by `add --podcast` on the head and
the `poll_source` task on agents."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from control.core.errors import ContentctlError
from control.core.urls import SCHEMES, open_checked

FEED_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Fetched:
    status: int  # 200, or 304 (not modified: nothing to read)
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None


def fetch(
    url: str,
    etag: str | None = None,
    last_modified: str | None = None,
    *,
    allow_private: bool = False,
) -> Fetched:
    """GET the feed, conditionally when we have its last ETag or Last-Modified. Every hop
    (a redirect too) connects only where a worker may (`urls.open_checked`)."""
    request = urllib.request.Request(url, headers={"User-Agent": "contentctl"})
    if etag:
        request.add_header("If-None-Match", etag)
    if last_modified:
        request.add_header("If-Modified-Since", last_modified)
    try:
        with open_checked(request, timeout=FEED_TIMEOUT_S, allow_private=allow_private) as resp:
            return Fetched(
                resp.status,
                resp.read(),
                resp.headers.get("ETag"),
                resp.headers.get("Last-Modified"),
            )
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Fetched(304, b"", etag, last_modified)
        raise ContentctlError(f"cannot fetch feed {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ContentctlError(f"cannot fetch feed {url}: {reason}: check the URL") from None


def episodes(url: str, body: bytes) -> list[dict[str, Any]]:
    """The feed's episodes (guid, enclosure URL, title, channel, date, length), oldest first."""
    import feedparser

    feed = feedparser.parse(body)
    if feed.bozo and not feed.entries:
        raise ContentctlError(
            f"{url} is not a podcast feed ({feed.bozo_exception}): give the RSS/Atom URL"
        )
    channel = feed.feed.get("title")
    out = []
    for entry in feed.entries:
        enclosure = next(
            (link.get("href") for link in entry.get("links", []) if link.get("rel") == "enclosure"),
            None,
        )
        if not enclosure or urlsplit(enclosure).scheme.lower() not in SCHEMES:
            continue  # no media, or not a web address (file://...): not an episode we fetch
        published = entry.get("published_parsed")
        out.append(
            {
                "guid": entry.get("id") or enclosure,
                "url": enclosure,
                "title": entry.get("title"),
                "channel": channel,
                "description": (entry.get("summary") or "")[:2000] or None,
                "duration_s": _duration(entry.get("itunes_duration")),
                "upload_date": (
                    f"{published.tm_year:04d}{published.tm_mon:02d}{published.tm_mday:02d}"
                    if published
                    else None
                ),
            }
        )
    out.reverse()  # feeds list newest first
    return out


def _duration(raw: Any) -> float | None:
    if not raw:
        return None
    try:
        parts = [float(p) for p in str(raw).split(":")]
    except ValueError:
        return None
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds
