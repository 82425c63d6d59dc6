"""Transcript files: JSON (segments with start, end, text), SRT, WebVTT and plain text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from control.core.storage import atomic_write


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _line(seg: dict[str, Any]) -> str:
    speaker = seg.get("speaker")
    return f"{speaker}: {seg['text']}" if speaker else str(seg["text"])


def to_srt(segments: list[dict[str, Any]]) -> str:
    blocks = [
        f"{i}\n{_clock(s['start'], ',')} --> {_clock(s['end'], ',')}\n{_line(s)}\n"
        for i, s in enumerate(segments, 1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: list[dict[str, Any]]) -> str:
    blocks = [
        f"{_clock(s['start'], '.')} --> {_clock(s['end'], '.')}\n{_line(s)}\n" for s in segments
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_txt(segments: list[dict[str, Any]]) -> str:
    return "\n".join(_line(s) for s in segments) + "\n"


def write_all(directory: Path, stem: str, doc: dict[str, Any]) -> dict[str, Path]:
    """Write `stem`.json/.srt/.vtt/.txt (each atomically); returns the paths by kind."""
    segs = doc["segments"]
    paths = {
        "json": directory / f"{stem}.json",
        "srt": directory / f"{stem}.srt",
        "vtt": directory / f"{stem}.vtt",
        "txt": directory / f"{stem}.txt",
    }
    with atomic_write(paths["json"]) as fh:
        json.dump(doc, fh, ensure_ascii=False, indent=1)
    for kind, render in (("srt", to_srt), ("vtt", to_vtt), ("txt", to_txt)):
        with atomic_write(paths[kind]) as fh:
            fh.write(render(segs))
    return paths
