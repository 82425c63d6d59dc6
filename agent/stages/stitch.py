"""`stitch`: the chunks of an item merged into one transcript.

Chunks overlap, and Whisper is least reliable at a window's edges (a word cut in half, a phrase
without its context). At each seam the words both chunks heard in the overlap are aligned by
text; the cut is made at the shared word nearest the middle of the overlap, so each word is kept
once. When the two sides share no word, the cut falls back to word times: the earlier chunk is
trusted up to shortly before its end, the later one from there. Segments keep their speaker
label where the backend gave one.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from agent.handlers import Context, TaskError
from agent.stages import out_dir, path, rel
from agent.stages.formats import write_all

EDGE_MARGIN_S = 1.0  # at most this much of a window's end is distrusted
SLACK_S = 0.5  # word times of two chunks differ by about this much for the same word
_Item = tuple[dict[str, Any], tuple[int, int], dict[str, Any]]  # word, segment key, segment


def _items(k: int, chunk: dict[str, Any]) -> list[_Item]:
    out: list[_Item] = []
    for i, seg in enumerate(chunk["segments"]):
        words = seg.get("words") or [
            {"start": seg["start"], "end": seg["end"], "word": " " + seg["text"]}
        ]
        out += [(w, (k, i), seg) for w in words]
    return sorted(out, key=lambda it: float(it[0]["start"]))


def _norm(item: _Item) -> str:
    return re.sub(r"\W", "", str(item[0]["word"]).lower())


def _start(item: _Item) -> float:
    return float(item[0]["start"])


def _seam(kept: list[_Item], nxt: list[_Item], lo: float, hi: float) -> list[_Item]:
    """`kept` (up to the earlier chunk) joined with the next chunk over the overlap [lo, hi]."""
    tail = [i for i, it in enumerate(kept) if _start(it) >= lo - SLACK_S]
    head = [j for j, it in enumerate(nxt) if _start(it) <= hi + SLACK_S]
    a = [_norm(kept[i]) for i in tail]
    b = [_norm(nxt[j]) for j in head]
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    blocks = [m for m in matcher.get_matching_blocks() if m.size]
    runs = [m for m in blocks if m.size >= 2] or blocks  # a run of words is a surer anchor
    pairs = [(tail[m.a + t], head[m.b + t]) for m in runs for t in range(m.size) if a[m.a + t]]
    # the same word heard at the same moment, not the same word twice in a row of speech
    pairs = [(i, j) for i, j in pairs if abs(_start(kept[i]) - _start(nxt[j])) <= SLACK_S]
    if pairs:
        middle = (lo + hi) / 2
        ai, bj = min(pairs, key=lambda p: abs(_start(kept[p[0]]) - middle))
        return kept[: ai + 1] + nxt[bj + 1 :]
    limit = hi - min(EDGE_MARGIN_S, (hi - lo) / 4)
    trusted = [it for it in kept if float(it[0]["end"]) <= limit or _start(it) < lo]
    last_end = float(trusted[-1][0]["end"]) if trusted else lo
    return trusted + [it for it in nxt if _start(it) >= last_end - SLACK_S / 10]


def merge(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Segments of all chunks (absolute times) with the overlaps de-duplicated."""
    chunks = sorted(chunks, key=lambda c: float(c["start_s"]))
    kept: list[_Item] = []
    for k, chunk in enumerate(chunks):
        items = _items(k, chunk)
        if k == 0:
            kept = items
            continue
        lo, hi = float(chunk["start_s"]), float(chunks[k - 1]["end_s"])
        kept = _seam(kept, items, lo, hi) if hi > lo else kept + items
    segments: list[dict[str, Any]] = []
    group: list[_Item] = []
    for it in [*kept, None]:
        if group and (it is None or it[1] != group[-1][1]):
            words = [w for w, _, _ in group]
            text = "".join(str(w["word"]) for w in words).strip()
            seg = group[0][2]
            out: dict[str, Any] = {
                "start": round(float(words[0]["start"]), 3),
                "end": round(float(words[-1]["end"]), 3),
                "text": text,
            }
            if seg.get("speaker"):
                out["speaker"] = seg["speaker"]
            if seg.get("words"):
                out["words"] = words
            segments.append(out)
            group = []
        if it is not None:
            group.append(it)
    return segments


def stitch(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    refs = payload.get("chunks")
    if not isinstance(refs, list) or not refs or not all(isinstance(r, dict) for r in refs):
        raise TaskError("stitch: payload has no chunks", retryable=False)
    chunks = []
    language = None
    for n, ref in enumerate(refs):
        p = path(ctx, ref, "path")  # under the storage root, or refused
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
    # how it was transcribed (vad_filter, initial_prompt), as the chunks recorded it
    options = next((c["options"] for c in chunks if c.get("options")), None)
    doc = {"language": language, "options": options, "segments": segments}
    paths = write_all(out_dir(ctx, payload), "transcript", doc)
    return {
        "transcript_json": rel(ctx, paths["json"]),
        "srt": rel(ctx, paths["srt"]),
        "vtt": rel(ctx, paths["vtt"]),
        "txt": rel(ctx, paths["txt"]),
        "segments": len(segments),
        "language": language,
    }
