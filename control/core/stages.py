"""The media pipeline's stages, declared once: names, order, the task types that run each,
what each reads and records, its files and columns. Data only (no database, cheap to import:
`--help` and the dashboard read it); what each stage does is registered under its name in
control/core/pipeline.py (`@starts`, `@records`), which checks at import that every stage
declared here has both."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Match:
    """Which items run a stage (an inventory stage's `match:`): every given key must hold.
    `kind`: youtube, podcast, file; `language`: the item's (asked, else detected) language;
    `source`: shell-style patterns of the item's URL or feed URL."""

    kind: tuple[str, ...] = ()
    language: tuple[str, ...] = ()
    source: tuple[str, ...] = ()

    def holds(self, item: dict[str, Any]) -> bool:
        if self.kind and item.get("kind") not in self.kind:
            return False
        if self.language:
            lang = (item.get("options") or {}).get("language") or (item.get("metadata") or {}).get(
                "language"
            )
            if lang not in self.language:
                return False
        if self.source:
            urls = [str(u) for u in (item.get("source"), item.get("feed_url")) if u]
            if not any(fnmatch.fnmatchcase(u, p) for u in urls for p in self.source):
                return False
        return True


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
    # an inventory stage (a `command` type): the built-in or earlier stage it follows, which
    # items run it, and the item's files it reads (file name -> the output that records it)
    after: str | None = None
    match: Match = field(default_factory=Match)
    reads: tuple[tuple[str, str], ...] = ()

    @property
    def custom(self) -> bool:
        return self.after is not None

    def wanted(self, item: dict[str, Any]) -> bool:
        """Whether this item runs the stage at all."""
        if self.asks is not None and not (item.get("options") or {}).get(self.asks):
            return False
        return self.match.holds(item)


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


# The pipeline in force in this process: the built-in stages with the inventory's stages
# placed after the ones they follow (set by `use`; read through `current`).
_current: tuple[Stage, ...] = DECLARED


def place(custom: tuple[Stage, ...], base: tuple[Stage, ...] = DECLARED) -> tuple[Stage, ...]:
    """`base` with each custom stage right after the stage it follows (after that stage's
    followers placed before it, in the order they are declared; a stage may follow one
    declared later). Raises ValueError naming the stage when what it follows is no stage."""
    order = list(base)
    waiting = list(custom)
    while waiting:
        names = [s.name for s in order]
        ready = [st for st in waiting if st.after in names]
        if not ready:
            st = waiting[0]
            if st.name in names:
                raise ValueError(f"stage {st.name!r} is declared twice")
            raise ValueError(f"stage {st.name!r} follows {st.after!r}, which is not a stage")
        st = ready[0]
        if st.name in names:
            raise ValueError(f"stage {st.name!r} is declared twice")
        at = names.index(str(st.after)) + 1
        while at < len(order) and order[at].custom:
            at += 1  # after the followers already placed there
        order.insert(at, st)
        waiting.remove(st)
    return tuple(order)


def use(custom: tuple[Stage, ...]) -> None:
    """Put the inventory's stages into this process's pipeline (the CLI, the dashboard and
    each agent call it once with the inventory they loaded)."""
    global _current
    _current = place(custom)


def current() -> tuple[Stage, ...]:
    """Every stage in force, in order."""
    return _current


def by_name(name: str) -> Stage:
    for st in _current:
        if st.name == name:
            return st
    raise KeyError(name)


def stages() -> tuple[str, ...]:
    """The item's stages in order."""
    return tuple(st.name for st in _current)


def stage_of(task_type: str) -> str | None:
    """The stage a task type runs, if any (intake and diagnostic types run none)."""
    for st in _current:
        if task_type in st.types:
            return st.name
    return None
