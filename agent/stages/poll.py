"""`poll_source`: read a source and answer with what it holds; the completion
(control.core.intake, in the same transaction) adds the new entries. A podcast feed is read with
conditional GET (ETag, Last-Modified); a channel or playlist by yt-dlp's flat extraction (a list
of entries, nothing downloaded)."""

from __future__ import annotations

from typing import Any

from agent.handlers import Context, TaskError
from control.core import feeds, ytdlp
from control.core.errors import ContentctlError
from control.core.urls import REFUSED_MARK, Refused, check_fetch, checked_resolver


def poll_source(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    url = payload.get("url")
    if not isinstance(url, str):
        raise TaskError("payload has no url to poll", retryable=False)
    private = bool(ctx.settings.get("allow_private_networks"))
    try:
        check_fetch(url, allow_private=private)
    except Refused as exc:
        raise TaskError(f"refusing to poll {url}: {exc}", retryable=False) from None
    if payload.get("kind") == "playlist":
        with checked_resolver(allow_private=private) as refused:  # every hop yt-dlp takes
            try:
                return _playlist(url, payload, ctx)
            except TaskError:
                if refused:
                    raise TaskError(
                        f"refusing to poll {url}: {refused[0]}", retryable=False
                    ) from None
                raise
    try:
        got = feeds.fetch(
            url, payload.get("etag"), payload.get("last_modified"), allow_private=private
        )
        if got.status == 304:
            return {"status": 304}
        entries = feeds.episodes(url, got.body)
    except ContentctlError as exc:
        raise TaskError(str(exc), retryable=REFUSED_MARK not in str(exc)) from None
    return {
        "status": got.status,
        "etag": got.etag,
        "last_modified": got.last_modified,
        "entries": entries,
    }


def _playlist(url: str, payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    import yt_dlp

    params = ytdlp.download_params(ctx.settings.get("ytdlp") or {}, payload.get("ytdlp") or {})
    try:
        got = ytdlp.playlist(url, int(payload.get("scan") or ytdlp.FLAT_SCAN), params)
    except ytdlp.NotAPlaylist:
        raise TaskError(
            f"{url} lists no entries (not a channel or playlist)", retryable=False
        ) from None
    except yt_dlp.utils.DownloadError as exc:
        raise TaskError(f"listing {url} failed: {ytdlp.error_line(exc)}", retryable=True) from None
    entries = got["entries"]
    entries.reverse()  # oldest first, as a feed's episodes are: the backlog is the front
    return {"status": 200, "entries": entries}
