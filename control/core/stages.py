"""The media pipeline's stages, declared once: names, order, the task types that run each,
what each reads and records, its files and columns. Data only (no database, cheap to import:
`--help` and the dashboard read it); what each stage does is registered under its name in
control/core/pipeline.py (`@starts`, `@records`), which checks at import that every stage
declared here has both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Stage:
    """One stage of an item's pipeline, declared once (DECLARED below): everything else (the
    order, `media ID`'s stages, `media retry --from`, reconcile's checks, the CLI's and the
    dashboard's columns) is read from here. Its behaviour is two functions registered under its
    name: `@starts(name)`, the tasks that run it for an item, and `@records(name)`, what its
    success writes into the item's outputs (and whether the stage is whole: a fan-in)."""

    name: str
    types: tuple[str, ...]  # the task types that run it
    needs: tuple[str, ...]  # outputs it reads, recorded by an earlier stage
    produces: tuple[str, ...]  # outputs its success records; the first says it is done
    label: str  # its column's heading
    files: tuple[tuple[str, str], ...] = ()  # file in the item's directory -> output (reconcile)
    per: str | None = None  # fan-out: one task per chunk, per language...
    asks: str | None = None  # the item option that asks for it (translate: langs); else always

    def wanted(self, item: dict[str, Any]) -> bool:
        """Whether this item runs the stage at all."""
        return self.asks is None or bool((item.get("options") or {}).get(self.asks))


DECLARED: tuple[Stage, ...] = (
    Stage("download", ("download_youtube", "download_podcast"), (), ("source",), "download"),
    Stage(
        "extract_audio",
        ("extract_audio",),
        ("source",),
        ("audio",),
        "extract",
        files=(("audio.wav", "audio"),),
    ),
    Stage("transcribe", ("transcribe",), ("audio",), ("chunks",), "transcribe", per="chunk"),
    Stage(
        "stitch",
        ("stitch",),
        ("chunks",),
        ("transcript_json", "srt", "vtt", "txt"),
        "stitch",
        files=(
            ("transcript.json", "transcript_json"),
            ("transcript.srt", "srt"),
            ("transcript.vtt", "vtt"),
            ("transcript.txt", "txt"),
        ),
    ),
    Stage(
        "translate",
        ("translate",),
        ("transcript_json",),
        ("translations",),
        "translate",
        per="language",
        asks="langs",
    ),
)


def by_name(name: str) -> Stage:
    for st in DECLARED:
        if st.name == name:
            return st
    raise KeyError(name)


def stages() -> tuple[str, ...]:
    """The item's stages in order."""
    return tuple(st.name for st in DECLARED)


def stage_of(task_type: str) -> str | None:
    """The stage a task type runs, if any (intake and diagnostic types run none)."""
    for st in DECLARED:
        if task_type in st.types:
            return st.name
    return None
