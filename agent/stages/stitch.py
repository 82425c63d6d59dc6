"""`stitch`: the chunks of an item merged into one transcript.

Chunks overlap; each seam is cut in the middle of the overlap, on word times: a word belongs to
the chunk whose share of the timeline holds the word's midpoint. Words near a chunk's edge (often
cut in half by the window) are the ones dropped, and no word is kept twice. Segments keep their
speaker label where the backend gave one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from agent.handlers import Context, TaskError
from agent.stages import out_dir, rel
from agent.stages.formats import write_all
from control.storage import PathEscapes, resolve


def _mid(item: dict[str, Any]) -> float:
    return (float(item["start"]) + float(item["end"])) / 2


def merge(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Segments of all chunks (absolute times) with the overlaps de-duplicated."""
    chunks = sorted(chunks, key=lambda c: float(c["start_s"]))
    merged: list[dict[str, Any]] = []
    for k, chunk in enumerate(chunks):
        lo = -math.inf if k == 0 else (chunk["start_s"] + chunks[k - 1]["end_s"]) / 2
        hi = math.inf if k == len(chunks) - 1 else (chunks[k + 1]["start_s"] + chunk["end_s"]) / 2
        for seg in chunk["segments"]:
            words = seg.get("words") or []
            if not words:  # no word times: the segment goes where its middle is
                if lo <= _mid(seg) < hi:
                    merged.append(_segment(seg, seg["start"], seg["end"], seg["text"], []))
                continue
            kept = [w for w in words if lo <= _mid(w) < hi]
            if kept:
                text = "".join(w["word"] for w in kept).strip()
                merged.append(_segment(seg, kept[0]["start"], kept[-1]["end"], text, kept))
    merged.sort(key=lambda s: s["start"])
    return merged


def _segment(
    seg: dict[str, Any], start: float, end: float, text: str, words: list[dict[str, Any]]
) -> dict[str, Any]:
    out: dict[str, Any] = {"start": round(start, 3), "end": round(end, 3), "text": text.strip()}
    if seg.get("speaker"):
        out["speaker"] = seg["speaker"]
    if words:
        out["words"] = words
    return out


def stitch(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    root = ctx.settings.get("storage_root")
    refs = payload.get("chunks")
    if not root or not isinstance(refs, list) or not refs:
        raise TaskError("stitch: payload has no chunks", retryable=False)
    chunks = []
    language = None
    for n, ref in enumerate(refs):
        try:
            p = resolve(Path(root), ref["path"])
        except (PathEscapes, KeyError, TypeError) as exc:
            raise TaskError(f"stitch: chunk {n}: {exc}", retryable=False) from exc
        try:
            doc = json.loads(p.read_text())
        except FileNotFoundError:
            raise TaskError(
                f"stitch: chunk file {ref['path']} is missing: re-run transcribe "
                f"(contentctl media retry {payload.get('media_id')} --from transcribe)",
                retryable=False,
            ) from None
        language = language or doc.get("language")
        chunks.append(doc)
        ctx.progress((n + 1) / (len(refs) + 1), "reading chunks")
    segments = merge(chunks)
    doc = {"language": language, "segments": segments}
    paths = write_all(out_dir(ctx, payload), "transcript", doc)
    return {
        "transcript_json": rel(ctx, paths["json"]),
        "srt": rel(ctx, paths["srt"]),
        "vtt": rel(ctx, paths["vtt"]),
        "txt": rel(ctx, paths["txt"]),
        "segments": len(segments),
        "language": language,
    }
