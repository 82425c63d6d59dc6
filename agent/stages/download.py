"""`download_youtube` and `download_podcast`: yt-dlp fetches the best audio (its generic
extractor also takes a podcast enclosure or any direct media URL) into the item's directory."""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

from agent.handlers import Context, TaskError
from agent.stages import out_dir, rel
from control.core import ytdlp
from control.core.storage import atomic_path
from control.core.urls import Refused, check_fetch, checked_resolver

# yt-dlp errors that another attempt will not fix
PERMANENT = re.compile(
    r"HTTP Error 40[0-9]|HTTP Error 410|Unsupported URL|unavailable|Private video|"
    r"not a valid URL|removed|copyright",
    re.IGNORECASE,
)
META_KEYS = ("title", "channel", "uploader", "duration", "upload_date", "webpage_url", "ext")


def _download(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    import yt_dlp

    url = payload.get("url")
    if not isinstance(url, str) or not url:
        raise TaskError("payload has no url to download", retryable=False)
    private = bool(ctx.settings.get("allow_private_networks"))
    try:  # a feed or a page names the URL: never file://, never the metadata service
        check_fetch(url, allow_private=private)
    except Refused as exc:
        raise TaskError(f"refusing to download {url}: {exc}", retryable=False) from None
    dest_dir = out_dir(ctx, payload)
    work = dest_dir / f".download-{ctx.task_id}"
    shutil.rmtree(work, ignore_errors=True)

    def hook(d: dict[str, Any]) -> None:
        total = d.get("total_bytes") or d.get("total_bytes_estimate")
        if d.get("status") == "downloading" and total:
            ctx.progress(
                min(0.99, float(d.get("downloaded_bytes") or 0) / float(total)), "downloading"
            )

    opts = {
        "format": "bestaudio/best",
        "outtmpl": str(work / "source.%(ext)s"),
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "noplaylist": True,
        "socket_timeout": 30,
        "retries": 3,
        "progress_hooks": [hook],
        "logger": ytdlp.QuietLogger(warnings=True),
        # the fleet's pipeline.ytdlp, then the source's: format, cookies, rate limit, sleep
        **ytdlp.download_params(ctx.settings.get("ytdlp") or {}, payload.get("ytdlp") or {}),
    }
    cookies = opts.get("cookiefile")
    if cookies and not os.path.isfile(cookies):
        raise TaskError(
            f"cookies file {cookies} is not on this host: copy it there or change the "
            "`cookies` option",
            retryable=False,
        )
    try:  # every connection, each redirect's too, only where a worker may connect
        with checked_resolver(allow_private=private) as refused, yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=True)
    except yt_dlp.utils.DownloadError as exc:
        shutil.rmtree(work, ignore_errors=True)
        if refused:  # a redirect led where a worker must not go: final
            raise TaskError(f"refusing to download {url}: {refused[0]}", retryable=False) from None
        message = ytdlp.error_line(exc)
        raise TaskError(
            f"download of {url} failed: {message}", retryable=not PERMANENT.search(message)
        ) from None
    files = [p for p in work.iterdir() if p.is_file() and not p.name.endswith(".part")]
    if not files:
        raise TaskError(f"download of {url} produced no file", retryable=True)
    got = files[0]
    dest = dest_dir / f"source{got.suffix}"
    size = got.stat().st_size
    with atomic_path(dest) as tmp:  # published with the attempt's completion
        os.replace(got, tmp)
    shutil.rmtree(work, ignore_errors=True)
    meta = {k: info.get(k) for k in META_KEYS if info and info.get(k) is not None}
    if "duration" in meta:
        meta["duration_s"] = meta.pop("duration")
    if "channel" not in meta and "uploader" in meta:
        meta["channel"] = meta["uploader"]
    return {"path": rel(ctx, dest), "bytes": size, "metadata": meta}


def download_youtube(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return _download(payload, ctx)


def download_podcast(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return _download(payload, ctx)
