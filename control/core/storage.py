"""The storage root (the NAS mount, or a local directory) and the media files under it.

Everything a task reads or writes is named by a path relative to the storage root; `resolve`
refuses one that escapes it (`..`, an absolute path, a symlink pointing out). Files are written
to a temporary name in the same directory and renamed, so a killed task never leaves a half
file that looks whole, and re-running a stage simply replaces its outputs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

FILE_MODE = 0o644


class PathEscapes(ValueError):
    """A relative path that points outside the storage root."""


def resolve(root: Path, rel: str) -> Path:
    """`root / rel`, refused when it lands outside `root` (after resolving symlinks)."""
    if not isinstance(rel, str) or not rel:
        raise PathEscapes(f"path {rel!r} is not a relative path under the storage root")
    base = root.resolve()
    target = (base / rel).resolve()
    if Path(rel).is_absolute() or not target.is_relative_to(base):
        raise PathEscapes(
            f"path {rel!r} escapes the storage root {base}: use a path relative to it"
        )
    return target


def media_dir(media_id: int) -> str:
    """The item's directory, relative to the storage root."""
    return f"media/{int(media_id)}"


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """A temporary path next to `dest`; renamed onto `dest` when the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; other users of the share must read it
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_write(dest: Path, mode: str = "w") -> Iterator[IO[str]]:
    with atomic_path(dest) as tmp, open(tmp, mode, encoding="utf-8") as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
