"""Media items: adding them (a video URL, a podcast feed, a local file), reading their stage
states, and re-running them from a stage (comparing with the storage root: head/reconcile.py).

Stage states are read from the item's tasks of its current generation (docs/contract.md,
`contentctl media ID --json`): `pending` (not started yet), `queued`, `running`, `succeeded`,
`failed`, `cancelled`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from control.core import db, feeds, pipeline, ytdlp
from control.core import stages as declared
from control.core.db import AsyncConn
from control.core.errors import ContentctlError, UsageError
from control.core.queue import Queue
from control.core.readmodels import MediaTask, MediaView
from control.core.sql import q
from control.core.storage import media_dir, resolve

FEED_TIMEOUT_S = 30.0
OUTPUT_KEYS = ("audio", "transcript_json", "srt", "vtt", "txt")


@dataclass(frozen=True)
class Added:
    id: int
    created: bool
    title: str | None = None


def classify(source: str, podcast: bool) -> str:
    if podcast:
        return "podcast"
    if "://" in source:
        return "youtube"
    return "file"


PROMPT_MAX = 1000  # characters of an initial prompt (Whisper reads ~220 tokens of it)


def options(
    langs: list[str],
    pipeline_cfg: dict[str, Any],
    priority: int,
    *,
    language: str | None = None,
    prompt: str | None = None,
) -> dict[str, Any]:
    """An item's options: translations, chunking, priority (its later stages inherit it), and
    what its transcription is told: the spoken language and an initial prompt (names, jargon,
    spelling), each over the host's `transcribe:` settings."""
    opts: dict[str, Any] = {
        "langs": langs,
        "chunk_s": float(pipeline_cfg.get("chunk_s", pipeline.DEFAULT_CHUNK_S)),
        "overlap_s": float(pipeline_cfg.get("overlap_s", pipeline.DEFAULT_OVERLAP_S)),
        "priority": priority,
    }
    if language is not None:
        opts["language"] = checked_language(language)
    if prompt is not None:
        opts["prompt"] = checked_prompt(prompt)
    return opts


def checked_language(text: str) -> str:
    code = text.strip().lower()
    if not (2 <= len(code) <= 8 and code.isascii() and code.isalpha()):
        raise UsageError(
            f"--language: {text!r} is not a language code: use Whisper's, e.g. en, de, he"
        )
    return code


def checked_prompt(text: str) -> str:
    if "\x00" in text or len(text) > PROMPT_MAX:
        raise UsageError(
            f"--prompt holds a NUL byte or is over {PROMPT_MAX} characters: give the names and "
            "words the speech uses, in a sentence or two"
        )
    return text


async def _insert(
    conn: AsyncConn,
    *,
    kind: str,
    source: str,
    unique_key: str | None,
    opts: dict[str, Any],
    feed_url: str | None = None,
    meta: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], bool]:
    meta = meta or {}
    cur = await conn.execute(
        q("insert_media_item"),
        {
            "kind": kind,
            "source": source,
            "unique_key": unique_key,
            "feed_url": feed_url,
            "title": meta.get("title"),
            "channel": meta.get("channel"),
            "duration_s": meta.get("duration_s"),
            "upload_date": meta.get("upload_date"),
            "metadata": Jsonb(meta),
            "options": Jsonb(opts),
            "source_id": None,
        },
    )
    row = await cur.fetchone()
    if row is not None:
        return dict(row), True
    cur = await conn.execute(q("media_item_by_key"), {"unique_key": unique_key})
    existing = await cur.fetchone()
    assert existing is not None
    return dict(existing), False


async def add_url(conn: AsyncConn, url: str, opts: dict[str, Any]) -> Added:
    """A video (or any URL yt-dlp can fetch): one item per video, its download task."""
    key = await asyncio.to_thread(ytdlp.identity, url)
    async with conn.transaction():
        item, created = await _insert(conn, kind="youtube", source=url, unique_key=key, opts=opts)
        if created:
            await Queue(conn).enqueue(pipeline.first_specs(item, "download"))
    return Added(int(item["id"]), created, item.get("title"))


async def add_file(conn: AsyncConn, path: Path, storage_root: Path, opts: dict[str, Any]) -> Added:
    """A local file: copied into the storage root (the agents read it there), then extracted."""
    if not storage_root.is_dir():
        raise ContentctlError(
            f"storage root {storage_root} does not exist: mount the NAS there (nothing added)"
        )
    fd = _open_addable(path)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        return await _add_opened(conn, path, fd, mode, storage_root, opts)
    finally:
        os.close(fd)


# pseudo-filesystems whose "files" are the machine's or a process's state, never media
NOT_ADDABLE = (Path("/proc"), Path("/sys"), Path("/dev"), Path("/run"))


def _open_addable(path: Path) -> int:
    """Open a file an operator adds, refusing what `add` must not copy into shared storage:
    a path through a symbolic link (the last part or a directory above it), a pseudo-file
    (/proc/self/environ), anything but a regular file, a file with other hard links (a link
    planted next to a secret), and, run as root for someone else (sudo), a file that user could
    not read. The file is opened once (no link followed) and copied from that descriptor."""
    absolute = Path(os.path.abspath(path))
    try:
        real = absolute.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise UsageError(f"{path} cannot be read ({exc}): give a URL or an existing file") from None
    if any(p.is_relative_to(top) for p in (absolute, real) for top in NOT_ADDABLE):
        raise UsageError(f"{path} is a system pseudo-file, not media: nothing added")
    if real != absolute:
        raise UsageError(
            f"{path} is reached through a symbolic link: give the real path ({real}) if you "
            "mean that file"
        )
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise UsageError(f"{path} cannot be opened ({exc.strerror}): nothing added") from None
    st = os.fstat(fd)
    why = None
    if not stat.S_ISREG(st.st_mode):
        why = "is not a regular file: give a URL, a feed URL with --podcast, or a file"
    elif st.st_nlink > 1:
        why = "has other hard links: copy the file itself, then add the copy"
    elif os.geteuid() == 0 and "SUDO_UID" in os.environ:
        invoker = int(os.environ["SUDO_UID"])
        if st.st_uid != invoker and not st.st_mode & stat.S_IROTH:
            why = f"is not readable by the user who ran sudo (uid {invoker}): nothing added"
    if why is not None:
        os.close(fd)
        raise UsageError(f"{path} {why}")
    return fd


async def _add_opened(
    conn: AsyncConn, path: Path, fd: int, mode: int, storage_root: Path, opts: dict[str, Any]
) -> Added:
    async with conn.transaction():
        item, _ = await _insert(
            conn,
            kind="file",
            source=str(path.resolve()),
            unique_key=None,
            opts=opts,
            meta={"title": path.stem},
        )
        rel = f"{media_dir(item['id'])}/source{path.suffix.lower()}"
        dest = resolve(storage_root, rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        with os.fdopen(os.dup(fd), "rb") as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
        os.chmod(tmp, mode)  # the source's own mode: a private file stays private
        tmp.replace(dest)
        outputs = {"source": rel}
        await conn.execute(q("set_media_paths"), {"id": item["id"], "outputs": Jsonb(outputs)})
        await Queue(conn).enqueue(pipeline.first_specs({**item, "outputs": outputs}, "download"))
    return Added(int(item["id"]), True, path.stem)


def fetch_feed(url: str, *, allow_private: bool = False) -> list[dict[str, Any]]:
    """The feed's episodes, oldest first (read on the head when a feed is added)."""
    return feeds.episodes(url, feeds.fetch(url, allow_private=allow_private).body)


async def add_podcast(
    conn: AsyncConn, feed_url: str, episodes: list[dict[str, Any]], opts: dict[str, Any]
) -> list[Added]:
    """Each episode not seen before becomes an item exactly once (key: feed URL + guid)."""
    added = []
    async with conn.transaction():
        for ep in episodes:
            meta = {k: ep[k] for k in ("title", "channel", "duration_s", "upload_date", "guid")}
            item, created = await _insert(
                conn,
                kind="podcast",
                source=ep["url"],
                unique_key=f"podcast:{feed_url}#{ep['guid']}",
                opts=opts,
                feed_url=feed_url,
                meta=meta,
            )
            if created:
                await Queue(conn).enqueue(pipeline.first_specs(item, "download"))
            added.append(Added(int(item["id"]), created, item.get("title")))
    return added


# -- reading --------------------------------------------------------------------------------
def _aggregate(states: list[str]) -> str:
    if not states:
        return "pending"
    for s in ("failed", "cancelled", "running"):
        if s in states:
            return s
    if any(s in ("queued", "scheduled") for s in states):
        return "queued"
    return "succeeded"


def _expected(stage: declared.Stage, tasks: list[dict[str, Any]], item: dict[str, Any]) -> int:
    """How many tasks a stage runs for this item: one, or one per chunk or language."""
    if stage.per == "chunk":
        return max([int(t["payload"].get("chunks", 1)) for t in tasks] or [0])
    if stage.per == "language":
        return len((item.get("options") or {}).get("langs") or [])
    return 1 if tasks else 0


def view(item: dict[str, Any], tasks: list[dict[str, Any]], storage_root: Path) -> MediaView:
    """One item as `contentctl media ID --json` shows it (docs/contract.md)."""
    shown = [st for st in declared.current() if st.wanted(item)]
    by_stage: dict[str, list[dict[str, Any]]] = {st.name: [] for st in declared.current()}
    for t in tasks:
        if (name := declared.stage_of(t["type"])) is not None:
            by_stage[name].append(t)
    stages = {st.name: _aggregate([t["state"] for t in by_stage[st.name]]) for st in shown}
    if item["kind"] == "file" and stages["download"] == "pending":
        stages["download"] = "succeeded"  # a local file needs no download
    kept = item.get("outputs") or {}
    for st in shown:  # kept from an earlier generation: no task ran it in this one
        if stages[st.name] == "pending" and not by_stage[st.name] and kept.get(st.produces[0]):
            stages[st.name] = "succeeded"
    transcribe = by_stage["transcribe"]
    for st in shown:  # a fan-out is done when all its tasks are
        tasks_of = by_stage[st.name]
        expected = _expected(st, tasks_of, item)
        if tasks_of and stages[st.name] == "succeeded" and len(tasks_of) < expected:
            stages[st.name] = "running"
    final = shown[-1].name
    if any(v in ("failed", "cancelled") for v in stages.values()):
        state = "failed" if "failed" in stages.values() else "cancelled"
    elif stages[final] == "succeeded":
        state = "succeeded"
    elif any(v == "running" for v in stages.values()):
        state = "running"
    else:
        state = "queued"
    outputs = item.get("outputs") or {}
    root = storage_root
    out: dict[str, Any] = {k: _abs(root, outputs.get(k)) for k in OUTPUT_KEYS}
    for st in shown:  # an inventory stage's files, by their keys (`STAGE:FILE`)
        out.update({key: _abs(root, outputs.get(key)) for _, key in st.files if st.custom})
    out["translations"] = {
        lang: _abs(root, (paths or {}).get("json"))
        for lang, paths in (outputs.get("translations") or {}).items()
    }
    errors = [t for t in tasks if t["state"] == "failed"]
    return MediaView(
        id=int(item["id"]),
        source=str(item["source"]),
        kind=str(item["kind"]),
        title=item.get("title"),
        channel=item.get("channel"),
        duration_s=item.get("duration_s"),
        source_id=item.get("source_id"),
        state=state,
        generation=int(item["generation"]),
        stages=stages,
        outputs=out,
        chunks_done=sum(1 for t in transcribe if t["state"] == "succeeded"),
        chunks=expected,
        running=tuple(
            MediaTask(t["id"], t["type"], t["host"], t["progress"], t["progress_stage"])
            for t in tasks
            if t["state"] == "running"
        ),
        error=errors[0]["error_message"] if errors else None,
        created_at=item["created_at"].isoformat() if item.get("created_at") else None,
    )


def _abs(root: Path, rel: str | None) -> str | None:
    return str(root / rel) if rel else None


async def items(
    conn: AsyncConn,
    storage_root: Path,
    media_id: int | None = None,
    limit: int = 50,
    source_id: int | None = None,
) -> list[MediaView]:
    cur = await conn.execute(
        q("media_items"), {"id": media_id, "limit": limit, "source_id": source_id}
    )
    rows: list[dict[str, Any]] = [dict(r) for r in await cur.fetchall()]
    if not rows:
        return []
    tasks: dict[int, list[dict[str, Any]]] = {}
    for t in await db.rows(conn, q("media_tasks"), {"ids": [r["id"] for r in rows]}):
        tasks.setdefault(int(t["media_id"]), []).append(t)
    return [view(r, tasks.get(int(r["id"]), []), storage_root) for r in rows]


async def item(conn: AsyncConn, storage_root: Path, media_id: int) -> MediaView:
    found = await items(conn, storage_root, media_id, limit=1)
    if not found:
        raise UsageError(f"no media item {media_id}: see `contentctl media` for the list")
    return found[0]


# -- re-running -----------------------------------------------------------------------------


async def retry(conn: AsyncConn, media_id: int, stage: str | None) -> dict[str, Any]:
    """Start a new generation of the item at `stage` (default: the first stage not done),
    keeping what earlier stages produced. Returns {from, tasks, generation}."""
    async with conn.transaction():
        cur = await conn.execute(q("lock_media_item"), {"id": media_id})
        row = await cur.fetchone()
        if row is None:
            raise UsageError(f"no media item {media_id}: see `contentctl media` for the list")
        item: dict[str, Any] = dict(row)
        cur = await conn.execute(q("media_tasks"), {"ids": [media_id]})
        current = view(item, [dict(t) for t in await cur.fetchall()], Path("/"))
        if stage is None:
            stage = next((s for s, st in current.stages.items() if st != "succeeded"), None)
            if stage is None:
                raise UsageError(
                    f"media item {media_id} is done: name a stage with --from to re-run it"
                )
        names = declared.stages()
        if stage not in names:
            raise UsageError(f"unknown stage {stage!r}: use one of {', '.join(names)}")
        if stage == "download" and item["kind"] == "file":
            stage = "extract_audio"
        outputs = dict(item["outputs"] or {})
        missing = [k for k in declared.by_name(stage).needs if not outputs.get(k)]
        if missing:
            earlier = names[max(0, names.index(stage) - 1)]
            raise UsageError(
                f"media item {media_id} has no {missing[0]} yet: retry --from {earlier}"
            )
        # forget what this stage and the later ones produced
        for st in declared.current()[names.index(stage) :]:
            for k in st.produces:
                if not (st.name == "download" and item["kind"] == "file"):
                    outputs.pop(k, None)
        live = await db.ids(conn, q("live_media_tasks"), {"id": media_id})
        queue = Queue(conn)
        if live:
            await queue.cancel(live)
        cur = await conn.execute(q("bump_generation"), {"id": media_id, "outputs": Jsonb(outputs)})
        bumped = await cur.fetchone()
        assert bumped is not None
        specs = pipeline.first_specs(dict(bumped), stage)
        generation: Any = bumped["generation"]
        await queue.enqueue(specs)
    return {"id": media_id, "from": stage, "generation": generation, "tasks": len(specs)}


# -- one line per item (`add --wait`, `media`, the demo's summary) -------------------------
def short_state(state: str) -> str:
    return {"succeeded": "done", "pending": "-", "scheduled": "queued"}.get(state, state)


def media_line(item: MediaView) -> str:
    """One line per item: its stages in order, for `add --wait` and `media`."""
    stages = [
        f"{stage}:{short_state(state)}{item.chunk_count(stage)}"
        for stage, state in item.stages.items()
    ]
    if item.running and item.running[0].progress is not None:
        r = item.running[0]
        stages.append(f"[{r.type} {round(100 * float(r.progress or 0))}% on {r.host}]")
    return f"media {item.id} {item.state}: " + " ".join(stages)
