"""The code hash an agent reports in its heartbeats and the head compares with its own, so the
dashboard marks hosts that run stale code and a rollout knows when the new code is up."""

from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent  # the tree holding control/ and agent/


def code_hash(root: Path | None = None) -> str:
    """A short hash of the code an agent runs (control/ and agent/ under `root`)."""
    h = hashlib.sha256()
    root = root or ROOT
    for pkg in ("control", "agent"):
        for path in sorted((root / pkg).rglob("*")):
            if path.suffix in (".py", ".sql") and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()[:12]
