"""The pipeline stages as task handlers (run in the agent's task processes).

Every path in a payload is relative to the storage root and checked by `control.storage.resolve`:
a payload that points outside it is refused, not followed. Outputs are written under a temporary
name and renamed, so a killed stage never leaves a half file that looks whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.handlers import Context, TaskError
from control.core.storage import PathEscapes, resolve


def storage_root(ctx: Context) -> Path:
    raw = ctx.settings.get("storage_root")
    if not raw:
        raise TaskError("the agent has no storage root configured", retryable=False)
    return Path(raw)


def path(ctx: Context, payload: dict[str, Any], key: str) -> Path:
    """The payload's `key`, a path under the storage root; refused if it escapes."""
    rel = payload.get(key)
    if not isinstance(rel, str):
        raise TaskError(f"payload has no {key!r} path", retryable=False)
    try:
        return resolve(storage_root(ctx), rel)
    except PathEscapes as exc:
        raise TaskError(str(exc), retryable=False) from exc


def rel(ctx: Context, target: Path) -> str:
    """`target` relative to the storage root (what goes back into the database)."""
    return str(target.relative_to(storage_root(ctx).resolve()))


def out_dir(ctx: Context, payload: dict[str, Any]) -> Path:
    d = path(ctx, payload, "out_dir")
    d.mkdir(parents=True, exist_ok=True)
    return d
