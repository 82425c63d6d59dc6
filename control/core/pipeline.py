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
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from control.core import db
from control.core import stages as _stages
from control.core.queue import TaskSpec
from control.core.sql import q
from control.core.stages import Stage, stage_of, stages
from control.core.storage import media_dir
from control.core.tasktypes import ALL_TYPES

if TYPE_CHECKING:
    from control.core.queue import ClaimedTask, Queue, TaskSpec

__all__ = ["Stage", "stage_of", "stages"]  # read here by older callers; declared in stages.py


Starter = Callable[[dict[str, Any]], list["TaskSpec"]]
Recorder = Callable[["Advance"], Awaitable[None]]
_STARTS: dict[str, Starter] = {}
_RECORDS: dict[str, Recorder] = {}


def starts(stage: str) -> Callable[[Starter], Starter]:
    """Register the function that makes a stage's tasks for an item."""

    def register(fn: Starter) -> Starter:
        _STARTS[stage] = fn
        return fn

    return register


def records(stage: str) -> Callable[[Recorder], Recorder]:
    """Register the function that records a stage's success in its item."""

    def register(fn: Recorder) -> Recorder:
        _RECORDS[stage] = fn
        return fn

    return register


def check(stages: Sequence[Stage], types: Iterable[str]) -> None:
    """Refuse a pipeline declared without everything it needs: a stage with no task type, an
    undeclared type, no tasks or no record of its own, or reading what no earlier stage
    records (raised at import: a stage is never half declared)."""
    known = set(types)
    seen: set[str] = set()
    recorded: set[str] = set()
    for st in stages:
        where = f"stage {st.name!r}"
        if st.name in seen:
            raise ValueError(f"{where} is declared twice")
        if not st.types or not st.produces:
            raise ValueError(f"{where} needs at least one task type and one output")
        if unknown := [t for t in st.types if t not in known]:
            raise ValueError(f"{where} runs undeclared task types {unknown}")
        if missing := [k for k in st.needs if k not in recorded]:
            raise ValueError(f"{where} reads {missing}, which no earlier stage records")
        if st.name not in _STARTS or st.name not in _RECORDS:
            raise ValueError(f"{where} has no @starts or no @records function")
        seen.add(st.name)
        recorded.update(st.produces)


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
    if stage not in stages():
        raise ValueError(f"unknown stage {stage!r}: use one of {', '.join(stages())}")
    st = _stages.by_name(stage)
    return _start_command(item, st) if st.custom else _STARTS[stage](item)


def next_stage(item: dict[str, Any], after: str) -> str | None:
    """The first stage after `after` that this item runs (translate only when it asks; an
    inventory stage only for the items it matches)."""
    later = _stages.current()[stages().index(after) + 1 :]
    return next((st.name for st in later if st.wanted(item)), None)


def item_meta(item: dict[str, Any]) -> dict[str, Any]:
    """What a command's `{meta:KEY}` reads (control/core/commands.py META_KEYS)."""
    options = item.get("options") or {}
    metadata = item.get("metadata") or {}
    return {
        "id": item["id"],
        "kind": item.get("kind"),
        "title": item.get("title"),
        "channel": item.get("channel"),
        "url": item.get("source") if item.get("kind") != "file" else None,
        "upload_date": item.get("upload_date"),
        "duration_s": item.get("duration_s"),
        "language": options.get("language") or metadata.get("language"),
        "prompt": options.get("prompt"),
    }


def _start_command(item: dict[str, Any], st: Stage) -> list[TaskSpec]:
    """An inventory stage's one task: the item's files it reads, its directory, its values;
    the command itself comes from the worker's own inventory, never from the payload."""
    outputs = item.get("outputs") or {}
    files = {name: outputs[key] for name, key in st.reads}
    if "source" in st.needs:
        files["source"] = outputs["source"]
    return [
        _spec(
            item,
            st.types[0],
            "",
            stage=st.name,
            files=files,
            out_dir=media_dir(item["id"]),
            meta=item_meta(item),
        )
    ]


def _record_command(a: Advance, st: Stage) -> None:
    """An inventory stage's success: the files its command wrote, by their output keys."""
    written = a.result.get("files") or {}
    for name, key in st.files:
        if isinstance(written.get(name), str):
            a.outputs[key] = written[name]


@starts("download")
def _start_download(item: dict[str, Any]) -> list[TaskSpec]:
    if item["kind"] == "file":
        return first_specs(item, "extract_audio")
    options = item.get("options") or {}
    extra = {"ytdlp": options["ytdlp"]} if options.get("ytdlp") else {}
    base = media_dir(item["id"])
    return [
        _spec(item, DOWNLOAD_TYPES[item["kind"]], "", url=item["source"], out_dir=base, **extra)
    ]


@starts("extract_audio")
def _start_extract(item: dict[str, Any]) -> list[TaskSpec]:
    outputs = item.get("outputs") or {}
    return [
        _spec(item, "extract_audio", "", input=outputs["source"], out_dir=media_dir(item["id"]))
    ]


@starts("transcribe")
def _start_transcribe(item: dict[str, Any]) -> list[TaskSpec]:
    outputs = item.get("outputs") or {}
    options = item.get("options") or {}
    base = media_dir(item["id"])
    chunks = plan_chunks(
        float(item["duration_s"] or 0.0),
        float(options.get("chunk_s", DEFAULT_CHUNK_S)),
        float(options.get("overlap_s", DEFAULT_OVERLAP_S)),
    )
    # what the item tells Whisper (over the host's settings): its language, its prompt
    told = {
        k: options[o]
        for k, o in (("language", "language"), ("initial_prompt", "prompt"))
        if options.get(o)
    }
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
            **told,
        )
        for c in chunks
    ]


@starts("stitch")
def _start_stitch(item: dict[str, Any]) -> list[TaskSpec]:
    outputs = item.get("outputs") or {}
    return [_spec(item, "stitch", "", chunks=outputs["chunks"], out_dir=media_dir(item["id"]))]


@starts("translate")
def _start_translate(item: dict[str, Any]) -> list[TaskSpec]:
    outputs = item.get("outputs") or {}
    return [
        _spec(
            item,
            "translate",
            f":{lang}",
            lang=lang,
            transcript=outputs["transcript_json"],
            out_dir=media_dir(item["id"]),
        )
        for lang in (item.get("options") or {}).get("langs") or []
    ]


@dataclass
class Advance:
    """One stage's success, being recorded in its item (inside the completion transaction):
    a recorder writes `outputs` and `changes`; it sets `waiting` while a fan-in waits for the
    item's other tasks (nothing is written yet), `ends` when nothing follows this task."""

    conn: db.AsyncConn
    item: dict[str, Any]
    task: ClaimedTask
    result: dict[str, Any]
    outputs: dict[str, Any]
    changes: dict[str, Any]
    waiting: bool = False
    ends: bool = False


@records("download")
async def _record_download(a: Advance) -> None:
    a.outputs["source"] = a.result["path"]
    meta = a.result.get("metadata") or {}
    # What the item was added with (a feed's episode title and date) beats what the download
    # found (a podcast's file is often just "talk.mp3"); the length measured from the file
    # beats the feed's claim.
    for key in ("title", "channel", "duration_s", "upload_date"):
        if meta.get(key) is not None and (key == "duration_s" or a.item.get(key) is None):
            a.changes[key] = meta[key]
    a.changes["metadata"] = Jsonb({**meta, **(a.item["metadata"] or {})})


@records("extract_audio")
async def _record_extract(a: Advance) -> None:
    a.outputs["audio"] = a.result["path"]
    a.changes["duration_s"] = a.result.get("duration_s") or a.item["duration_s"]


@records("transcribe")
async def _record_transcribe(a: Advance) -> None:
    params = {"media_id": a.item["id"], "generation": a.item["generation"]}
    chunks = [dict(r["result"]) for r in await db.rows(a.conn, q("chunk_results"), params)]
    if len(chunks) < int(a.task.payload.get("chunks", 1)):
        a.waiting = True  # other chunks still running
        return
    a.outputs["chunks"] = [
        {"path": c["path"], "start_s": c["start_s"], "end_s": c["end_s"]} for c in chunks
    ]


@records("stitch")
async def _record_stitch(a: Advance) -> None:
    for key in ("transcript_json", "srt", "vtt", "txt"):
        a.outputs[key] = a.result[key]
    if a.result.get("language"):
        a.changes["metadata"] = Jsonb(
            {**(a.item["metadata"] or {}), "language": a.result["language"]}
        )


@records("translate")
async def _record_translate(a: Advance) -> None:
    translations = dict(a.outputs.get("translations") or {})
    translations[str(a.result["lang"])] = {
        k: a.result[k] for k in ("json", "srt", "vtt", "txt") if k in a.result
    }
    a.outputs["translations"] = translations
    a.ends = True  # each language is its own end


async def advance(queue: Queue, done: list[tuple[ClaimedTask, dict[str, Any] | None]]) -> None:
    """Record what the succeeded stages produced and enqueue what follows (same transaction)."""
    conn = queue.conn
    for task, result in sorted(done, key=lambda d: d[0].media_id or 0):
        cur = await conn.execute(q("lock_media_item"), {"id": task.media_id})
        row = await cur.fetchone()
        if row is None or int(task.payload.get("generation", 1)) != row["generation"]:
            continue  # the item is gone or was restarted since: nothing to advance
        stage = stage_of(task.type)
        if stage is None:
            continue
        item: dict[str, Any] = dict(row)
        a = Advance(conn, item, task, result or {}, dict(item["outputs"] or {}), {})
        if (st := _stages.by_name(stage)).custom:
            _record_command(a, st)
        else:
            await _RECORDS[stage](a)
        if a.waiting:
            continue  # a fan-in waiting for the item's other tasks: nothing to write yet
        follow: list[TaskSpec] = []
        # the item as this success leaves it (a stage matching on the detected language sees it)
        now = {k: v.obj if isinstance(v, Jsonb) else v for k, v in a.changes.items()}
        now = {**item, **now, "outputs": a.outputs}
        after = None if a.ends else next_stage(now, stage)
        if after is not None:
            follow = first_specs(now, after)
        a.changes["outputs"] = Jsonb(a.outputs)
        await _update_item(queue, int(item["id"]), a.changes)
        if follow:
            await queue.enqueue(follow)


async def _update_item(queue: Queue, media_id: int, changes: dict[str, Any]) -> None:
    params = {k: changes.get(k) for k in ("title", "channel", "duration_s", "upload_date")}
    params.update(id=media_id, metadata=changes.get("metadata"), outputs=changes.get("outputs"))
    await queue.conn.execute(q("update_media_item"), params)


check(_stages.DECLARED, ALL_TYPES)
