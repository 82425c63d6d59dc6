"""The media pipeline's flow: which tasks follow a stage's success.

download -> extract_audio -> transcribe (one task per chunk) -> stitch -> translate (one per
language). `advance` runs inside the transaction that records a stage's success (the queue calls
it from `complete`), so an item never loses its next step and never gets it twice: the item's
row is locked while its next tasks are decided, which serialises the chunks of one item finishing
on several hosts at once, and every follow-up task carries a unique key.

Each item has a `generation`; `contentctl media retry` starts a new one. Tasks carry the
generation they belong to, and a success from an older generation advances nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from control.core import db
from control.core.queue import TaskSpec
from control.core.sql import q
from control.core.storage import media_dir

if TYPE_CHECKING:
    from control.core.queue import ClaimedTask, Queue, TaskSpec

# The item's stages in order; `download` is download_youtube or download_podcast.
STAGES = ("download", "extract_audio", "transcribe", "stitch", "translate")
# what a stage's success records in the item's outputs: a stage whose output an item keeps from
# an earlier generation (`media retry --from` a later stage) is done in this one too
PRODUCES = {
    "download": "source",
    "extract_audio": "audio",
    "transcribe": "chunks",
    "stitch": "transcript_json",
    "translate": "translations",
}
DOWNLOAD_TYPES = {"youtube": "download_youtube", "podcast": "download_podcast"}

DEFAULT_CHUNK_S = 600.0
DEFAULT_OVERLAP_S = 5.0


@dataclass(frozen=True)
class Chunk:
    index: int
    start_s: float
    end_s: float


def plan_chunks(duration_s: float, chunk_s: float, overlap_s: float) -> list[Chunk]:
    """Overlapping windows covering [0, duration]. Audio no longer than one chunk is one chunk.
    The last window is stretched rather than leaving a sliver shorter than the overlap."""
    if chunk_s <= 0:
        raise ValueError(f"chunk length must be positive, not {chunk_s}")
    overlap_s = max(0.0, min(overlap_s, chunk_s / 2))
    if duration_s <= chunk_s:
        return [Chunk(0, 0.0, max(duration_s, 0.0))]
    step = chunk_s - overlap_s
    count = max(1, math.ceil((duration_s - overlap_s) / step))
    sliver = max(2 * overlap_s, 0.1 * chunk_s)
    if count > 1 and duration_s - (count - 1) * step <= sliver:
        count -= 1  # fold a sliver into the previous window
    chunks = []
    for i in range(count):
        start = i * step
        end = duration_s if i == count - 1 else min(start + chunk_s, duration_s)
        chunks.append(Chunk(i, round(start, 3), round(end, 3)))
    return chunks


def stage_of(task_type: str) -> str:
    return "download" if task_type.startswith("download_") else task_type


def _spec(item: dict[str, Any], task_type: str, key: str, **payload: Any) -> TaskSpec:

    gen = int(item["generation"])
    return TaskSpec(
        type=task_type,
        payload={"media_id": item["id"], "generation": gen, **payload},
        priority=int((item.get("options") or {}).get("priority", 0)),
        unique_key=f"{task_type}:{item['id']}:{gen}{key}",
        media_id=int(item["id"]),
    )


def first_specs(item: dict[str, Any], stage: str) -> list[TaskSpec]:
    """The tasks that (re)start an item at `stage`, from what earlier stages recorded."""
    outputs = item.get("outputs") or {}
    options = item.get("options") or {}
    base = media_dir(item["id"])
    if stage == "download":
        if item["kind"] == "file":
            return first_specs(item, "extract_audio")
        extra = {"ytdlp": options["ytdlp"]} if options.get("ytdlp") else {}
        return [
            _spec(item, DOWNLOAD_TYPES[item["kind"]], "", url=item["source"], out_dir=base, **extra)
        ]
    if stage == "extract_audio":
        return [_spec(item, "extract_audio", "", input=outputs["source"], out_dir=base)]
    if stage == "transcribe":
        chunks = plan_chunks(
            float(item["duration_s"] or 0.0),
            float(options.get("chunk_s", DEFAULT_CHUNK_S)),
            float(options.get("overlap_s", DEFAULT_OVERLAP_S)),
        )
        return [
            _spec(
                item,
                "transcribe",
                f":{c.index}",
                audio=outputs["audio"],
                chunk=c.index,
                chunks=len(chunks),
                start_s=c.start_s,
                end_s=c.end_s,
                out=f"{base}/chunks/{c.index:04d}.json",
            )
            for c in chunks
        ]
    if stage == "stitch":
        return [_spec(item, "stitch", "", chunks=outputs["chunks"], out_dir=base)]
    if stage == "translate":
        return [
            _spec(
                item,
                "translate",
                f":{lang}",
                lang=lang,
                transcript=outputs["transcript_json"],
                out_dir=base,
            )
            for lang in options.get("langs") or []
        ]
    raise ValueError(f"unknown stage {stage!r}: use one of {', '.join(STAGES)}")


async def advance(queue: Queue, done: list[tuple[ClaimedTask, dict[str, Any] | None]]) -> None:
    """Record what the succeeded stages produced and enqueue what follows (same transaction)."""
    conn = queue.conn
    for task, result in sorted(done, key=lambda d: d[0].media_id or 0):
        cur = await conn.execute(q("lock_media_item"), {"id": task.media_id})
        row = await cur.fetchone()
        if row is None or int(task.payload.get("generation", 1)) != row["generation"]:
            continue  # the item is gone or was restarted since: nothing to advance
        item: dict[str, Any] = dict(row)
        result = result or {}
        stage = stage_of(task.type)
        outputs = dict(item["outputs"] or {})
        changes: dict[str, Any] = {}
        follow: list[TaskSpec] = []
        if stage == "download":
            outputs["source"] = result["path"]
            meta = result.get("metadata") or {}
            # What the item was added with (a feed's episode title and date) beats what the
            # download found (a podcast's file is often just "talk.mp3"); the length measured
            # from the file beats the feed's claim.
            for key in ("title", "channel", "duration_s", "upload_date"):
                if meta.get(key) is not None and (key == "duration_s" or item.get(key) is None):
                    changes[key] = meta[key]
            changes["metadata"] = Jsonb({**meta, **(item["metadata"] or {})})
            follow = first_specs({**item, "outputs": outputs}, "extract_audio")
        elif stage == "extract_audio":
            outputs["audio"] = result["path"]
            changes["duration_s"] = result.get("duration_s") or item["duration_s"]
            follow = first_specs({**item, **changes, "outputs": outputs}, "transcribe")
        elif stage == "transcribe":
            params = {"media_id": item["id"], "generation": item["generation"]}
            chunks = [dict(r["result"]) for r in await db.rows(conn, q("chunk_results"), params)]
            if len(chunks) < int(task.payload.get("chunks", 1)):
                continue  # other chunks still running
            outputs["chunks"] = [
                {"path": c["path"], "start_s": c["start_s"], "end_s": c["end_s"]} for c in chunks
            ]
            follow = first_specs({**item, "outputs": outputs}, "stitch")
        elif stage == "stitch":
            for key in ("transcript_json", "srt", "vtt", "txt"):
                outputs[key] = result[key]
            if result.get("language"):
                changes["metadata"] = Jsonb(
                    {**(item["metadata"] or {}), "language": result["language"]}
                )
            follow = first_specs({**item, "outputs": outputs}, "translate")
        elif stage == "translate":
            translations = dict(outputs.get("translations") or {})
            translations[str(result["lang"])] = {
                k: result[k] for k in ("json", "srt", "vtt", "txt") if k in result
            }
            outputs["translations"] = translations
        changes["outputs"] = Jsonb(outputs)
        await _update_item(queue, int(item["id"]), changes)
        if follow:
            await queue.enqueue(follow)


async def _update_item(queue: Queue, media_id: int, changes: dict[str, Any]) -> None:
    params = {k: changes.get(k) for k in ("title", "channel", "duration_s", "upload_date")}
    params.update(id=media_id, metadata=changes.get("metadata"), outputs=changes.get("outputs"))
    await queue.conn.execute(q("update_media_item"), params)
