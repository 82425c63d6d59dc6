"""`contentctl reconcile [--fix]`: compare the database with the storage root.

Three kinds of drift (the old fleet's `fix_stalled_files`):
- `expired_lease`: a running task whose agent stopped renewing its lease. Fix: back to the queue
  (or to failed, when it has no attempts left).
- `missing_file`: a stage recorded as done whose output is not on disk. Fix: re-run the item
  from that stage (a new generation; earlier outputs are kept).
- `unrecorded_file`: a whole output on disk that the item does not list. Fix: record it.
Directories of items the database does not know (`orphan_dir`) are reported, never deleted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from control.core import db
from control.core import stages as declared
from control.core.db import AsyncConn
from control.core.queue import Queue
from control.core.sql import q
from control.core.storage import media_dir
from control.head import media

TRANSLATION = re.compile(r"^transcript\.([a-z]+)\.(json|srt|vtt|txt)$")


def _recorded(outputs: dict[str, Any]) -> list[tuple[str, str]]:
    """(stage, relative path) of everything the item says it has: each declared stage's
    outputs, a path each, or a list of chunks, or paths by language."""
    out: list[tuple[str, str]] = []
    for st in declared.current():
        for key in st.produces:
            value = outputs.get(key)
            if isinstance(value, str) and value:
                out.append((st.name, value))
            elif isinstance(value, list):
                out += [(st.name, c["path"]) for c in value if isinstance(c, dict)]
            elif isinstance(value, dict):
                for paths in value.values():
                    out += [(st.name, p) for p in (paths or {}).values()]
    return out


def _files() -> dict[str, str]:
    """File name in an item's directory -> the output it stands for (declared by stages)."""
    return {name: key for st in declared.current() for name, key in st.files}


def _on_disk(item_dir: Path, rel_dir: str) -> dict[str, Any]:
    """The outputs that the files in an item's directory stand for."""
    found: dict[str, Any] = {}
    if not item_dir.is_dir():
        return found
    files = _files()
    for p in sorted(item_dir.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue  # temporary (.part) files are never whole
        if p.name.startswith("source."):
            found["source"] = f"{rel_dir}/{p.name}"
        elif p.name in files:
            found[files[p.name]] = f"{rel_dir}/{p.name}"
        elif m := TRANSLATION.match(p.name):
            found.setdefault("translations", {}).setdefault(m[1], {})[m[2]] = f"{rel_dir}/{p.name}"
    return found


async def run(conn: AsyncConn, root: Path, *, fix: bool) -> list[dict[str, Any]]:
    findings: list[dict[str, Any]] = []
    cur = await conn.execute(q("expired_running"))
    for r in await cur.fetchall():
        findings.append(
            {
                "kind": "expired_lease",
                "task_id": r["id"],
                "media_id": r["media_id"],
                "detail": f"task {r['id']} ({r['type']}) on {r['host']}: lease expired",
            }
        )
    if fix and any(f["kind"] == "expired_lease" for f in findings):
        queue = Queue(conn)
        requeued = await db.rows(conn, q("requeue_expired"))
        if requeued:
            await queue.announce(str(r["type"]) for r in requeued)
        await queue.sweep_expired()
        for f in findings:
            f["fixed"] = True

    items = {int(r["id"]): r for r in await db.rows(conn, q("all_media_items"))}
    for media_id, item in items.items():
        outputs: dict[str, Any] = dict(item["outputs"] or {})
        missing = [(s, p) for s, p in _recorded(outputs) if not (root / p).is_file()]
        if missing:
            stages = [s for s, _ in missing]
            first = min(stages, key=declared.stages().index)
            finding = {
                "kind": "missing_file",
                "media_id": media_id,
                "path": missing[0][1],
                "stage": first,
                "detail": f"media {media_id}: {len(missing)} recorded file(s) missing, "
                f"first {missing[0][1]} ({first})",
            }
            if fix:
                if first == "download" and item["kind"] == "file":
                    finding["fix"] = "the local source file is gone: add the file again"
                else:
                    await media.retry(conn, media_id, first)
                    finding["fixed"] = True
                    finding["fix"] = f"re-running from {first}"
            findings.append(finding)
            continue
        rel_dir = media_dir(media_id)
        disk = _on_disk(root / rel_dir, rel_dir)
        unrecorded = {k: v for k, v in disk.items() if k != "translations" and not outputs.get(k)}
        known = outputs.get("translations") or {}
        langs = {
            lang: p for lang, p in (disk.get("translations") or {}).items() if lang not in known
        }
        if unrecorded or langs:
            names = [*unrecorded.values(), *(p.get("json", "") for p in langs.values())]
            finding = {
                "kind": "unrecorded_file",
                "media_id": media_id,
                "path": names[0],
                "detail": f"media {media_id}: {len(names)} file(s) on disk not recorded: "
                + ", ".join(names),
            }
            if fix:
                outputs.update(unrecorded)
                if langs:
                    outputs["translations"] = {**known, **langs}
                await conn.execute(
                    q("set_media_paths"), {"id": media_id, "outputs": Jsonb(outputs)}
                )
                finding["fixed"] = True
            findings.append(finding)
    media_root = root / "media"
    if media_root.is_dir():
        for d in sorted(media_root.iterdir()):
            if d.is_dir() and d.name.isdigit() and int(d.name) not in items:
                findings.append(
                    {
                        "kind": "orphan_dir",
                        "path": f"media/{d.name}",
                        "detail": f"media/{d.name} belongs to no media item (left alone)",
                    }
                )
    return findings
