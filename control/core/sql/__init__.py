"""Named SQL blocks from `queries.sql`, loaded once (procrastinate's pattern)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def queries() -> dict[str, str]:
    text = resources.files(__package__).joinpath("queries.sql").read_text()
    parts = _NAME.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {
        name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def q(name: str) -> str:
    """The SQL of one named block; KeyError names a block that does not exist."""
    return queries()[name]
