"""`poll_source`: read a source (a podcast feed) with conditional GET and answer with what it
holds; the completion (control.core.intake, in the same transaction) adds the new entries."""

from __future__ import annotations

from typing import Any

from agent.handlers import Context, TaskError
from control.core import feeds
from control.core.errors import ContentctlError
from control.core.urls import Refused, check_fetch


def poll_source(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    url = payload.get("url")
    if not isinstance(url, str):
        raise TaskError("payload has no url to poll", retryable=False)
    try:
        check_fetch(url, allow_private=bool(ctx.settings.get("allow_private_networks")))
    except Refused as exc:
        raise TaskError(f"refusing to poll {url}: {exc}", retryable=False) from None
    try:
        got = feeds.fetch(url, payload.get("etag"), payload.get("last_modified"))
        if got.status == 304:
            return {"status": 304}
        entries = feeds.episodes(url, got.body)
    except ContentctlError as exc:
        raise TaskError(str(exc), retryable=True) from None
    return {
        "status": got.status,
        "etag": got.etag,
        "last_modified": got.last_modified,
        "entries": entries,
    }
