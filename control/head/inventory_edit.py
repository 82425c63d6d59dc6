"""Changing one host in `inventory.yaml` the way a person would: comments, order and style kept
(ruamel.yaml round-trip), the result validated before it replaces the file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from control.core.errors import UsageError
from control.core.inventory import parse
from control.core.storage import atomic_write


def set_host(path: Path, host: str, **changes: Any) -> None:
    """Set `changes` (enabled_tasks, max_concurrent_tasks, ...) on `host` in the file."""
    yaml = YAML()
    yaml.preserve_quotes = True
    try:
        doc = yaml.load(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read inventory {path} ({exc.strerror})") from exc
    hosts = doc.get("hosts") if isinstance(doc, CommentedMap) else None
    if not isinstance(hosts, CommentedMap) or host not in hosts:
        raise UsageError(f"{path}: no host {host!r} to change: add it to the inventory first")
    entry = hosts[host]
    if entry is None:
        entry = hosts[host] = CommentedMap()
    for key, value in changes.items():
        if isinstance(value, list | tuple):
            seq = CommentedSeq(value)
            seq.fa.set_flow_style()  # [a, b, c] on one line, as people write it
            value = seq
        entry[key] = value
    out = io.StringIO()
    yaml.dump(doc, out)
    text = out.getvalue()
    parse(text, path)  # never write what would not load
    with atomic_write(path) as fh:
        fh.write(text)
