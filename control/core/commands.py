"""Argv templates of `command` task types (the inventory's `task_types: NAME: {command: [...]}`).

A template is a list of words; each word may hold placeholders, replaced when the task runs on
the worker, each word staying one argv item whatever the value holds (quotes, `$(...)`,
newlines): no shell ever reads it.

    {file:NAME}   the item's file NAME (transcript.txt, audio.wav, or a file an earlier
                  inventory stage writes), as an absolute path under the storage root
    {source}      the item's media file as downloaded or added
    {out:NAME}    the file NAME this task writes into the item's directory: the command
                  writes to a temporary path, published once the queue accepts the attempt
    {meta:KEY}    the item's KEY: one of META_KEYS
    {payload:KEY} the task payload's KEY (a type enqueued by hand: `enqueue NAME --payload`)
    {task_id} {attempt} {media_id}
    {{ }}         a literal brace

Parsed here (pure, shared by `inventory check` and the agent), run by agent/stages/command.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

META_KEYS = (
    "id",
    "kind",
    "title",
    "channel",
    "url",
    "upload_date",
    "duration_s",
    "language",
    "prompt",
)
PLAIN_KEYS = ("source", "task_id", "attempt", "media_id")
ARG_KEYS = ("file", "out", "meta", "payload")
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class BadTemplate(ValueError):
    """A template word the worker could not fill: the message names the placeholder."""


@dataclass(frozen=True)
class Part:
    """One piece of a word: literal text, or a placeholder (kind, key)."""

    text: str = ""
    kind: str | None = None
    key: str | None = None


def parse_word(word: str) -> tuple[Part, ...]:
    """A template word as literal text and placeholders; BadTemplate on anything unknown."""
    parts: list[Part] = []
    pos = 0
    for m in _TOKEN.finditer(word):
        if m.start() > pos:
            parts.append(Part(word[pos : m.start()]))
        pos = m.end()
        tok = m.group(0)
        if tok in ("{{", "}}"):
            parts.append(Part(tok[0]))
            continue
        if m.group(1) is None:
            raise BadTemplate(f"a lone {tok!r} in {word!r}: write {tok * 2} for a literal brace")
        parts.append(_placeholder(m.group(1)))
    if pos < len(word):
        parts.append(Part(word[pos:]))
    return tuple(parts)


def _placeholder(body: str) -> Part:
    kind, sep, key = body.partition(":")
    if not sep:
        if kind in PLAIN_KEYS:
            return Part(kind=kind)
        raise BadTemplate(f"unknown placeholder {{{body}}}: use {_known()}")
    if kind not in ARG_KEYS:
        raise BadTemplate(f"unknown placeholder {{{body}}}: use {_known()}")
    if kind in ("file", "out"):
        if not _FILE_NAME.fullmatch(key) or ".." in key:
            raise BadTemplate(
                f"{{{body}}}: {key!r} is not a plain file name (letters, digits, . _ -; "
                "no directories): files stay in the item's directory"
            )
    elif kind == "meta" and key not in META_KEYS:
        raise BadTemplate(
            f"{{{body}}}: unknown item key {key!r}: use one of {', '.join(META_KEYS)}"
        )
    elif kind == "payload" and not _KEY.fullmatch(key):
        raise BadTemplate(f"{{{body}}}: {key!r} is not a payload key (letters, digits, _)")
    return Part(kind=kind, key=key)


def _known() -> str:
    return ", ".join([*(f"{{{k}}}" for k in PLAIN_KEYS), *(f"{{{k}:...}}" for k in ARG_KEYS)])


def parse(argv: tuple[str, ...]) -> tuple[tuple[Part, ...], ...]:
    """Every word of a template, parsed; BadTemplate names the first bad one."""
    if not argv or not argv[0]:
        raise BadTemplate("a command needs at least the program to run")
    if any(p.kind for p in parse_word(argv[0])):
        raise BadTemplate(f"the program {argv[0]!r} must be written out, not a placeholder")
    return tuple(parse_word(w) for w in argv)


def uses(argv: tuple[str, ...], kind: str) -> tuple[str, ...]:
    """The keys of one kind of placeholder a template uses, in order, once each."""
    found: list[str] = []
    for word in parse(argv):
        for p in word:
            if p.kind == kind and p.key is not None and p.key not in found:
                found.append(p.key)
            elif p.kind == kind and p.key is None and kind not in found:
                found.append(kind)
    return tuple(found)
