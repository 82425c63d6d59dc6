"""JSON from outside, read with bounds: a size and a nesting depth checked before the parser
runs (Python's json recurses: 5,000 levels end in RecursionError, and a payload of 126 KB
times --count 100000 is 12 GB in the queue)."""

from __future__ import annotations

import json
from typing import Any

from control.core.errors import UsageError

MAX_DEPTH = 64


def nesting(text: str, limit: int = MAX_DEPTH) -> int:
    """How deep `text`'s brackets nest (outside strings), counting no further than limit+1."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def loads(text: str, what: str, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads, refusing (one line, UsageError) text over `max_bytes` or deeper than
    `max_depth`, and NUL characters (PostgreSQL's jsonb cannot hold them)."""
    size = len(text.encode())
    if size > max_bytes:
        raise UsageError(f"{what} is {size:,} bytes: at most {max_bytes:,}")
    if nesting(text, max_depth) > max_depth:
        raise UsageError(f"{what} nests deeper than {max_depth} levels")
    if "\x00" in text or "\\u0000" in text:
        raise UsageError(f"{what} holds a NUL character, which the queue cannot store")
    return json.loads(text)
