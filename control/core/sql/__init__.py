"""Named SQL blocks from the `*.sql` files beside this module (one per domain: queue, fleet,
media, views), loaded once (procrastinate's pattern). A name is defined once across them."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def queries() -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        parts = _NAME.split(entry.read_text())
        # parts = [preamble, name1, body1, name2, body2, ...]
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in out:
                raise RuntimeError(f"SQL block {name!r} is defined twice ({entry.name})")
            out[name] = body.strip().rstrip(";")
    return out


def q(name: str) -> str:
    """The SQL of one named block; KeyError names a block that does not exist."""
    return queries()[name]
