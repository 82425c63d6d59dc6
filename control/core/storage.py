"""The storage root (the NAS mount, or a local directory) and the media files under it.

Everything a task reads or writes is named by a path relative to the storage root; `resolve`
refuses one that escapes it (`..`, an absolute path, a symlink pointing out). Files are written
to a temporary name in the same directory and renamed, so a killed task never leaves a half
file that looks whole, and re-running a stage simply replaces its outputs.
"""

from __future__ import annotations

import contextlib
import contextvars
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
    """A temporary path next to `dest`; renamed onto `dest` when the block succeeds, or, inside
    `staged()`, left under its temporary name for whoever publishes the attempt's outputs."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; other users of the share must read it
    staging = _staging.get()
    kept = False
    try:
        yield Path(tmp)
        if staging is not None:
            staging.append((Path(tmp), dest))
            kept = True
        else:
            os.replace(tmp, dest)
    finally:
        if not kept:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


# (temporary, destination) pairs an attempt wrote and has not published: see `staged`
Staged = list[tuple[Path, Path]]
_staging: contextvars.ContextVar[Staged | None] = contextvars.ContextVar("staging", default=None)


@contextlib.contextmanager
def staged() -> Iterator[Staged]:
    """Within: every `atomic_path` output stays under its temporary name and is listed here
    instead of being renamed onto its destination. The agent publishes the list only once the
    queue accepted the attempt's completion, inside that completion's transaction (the task's
    row locked): an attempt that lost its lease meanwhile (a partition, a sleeping laptop)
    never replaces the files of the attempt the queue accepted. On an exception the temporary
    files are removed."""
    found: Staged = []
    token = _staging.set(found)
    try:
        yield found
    except BaseException:
        discard(found)
        raise
    finally:
        _staging.reset(token)


def publish(pairs: Staged) -> None:
    """Rename each staged output onto its destination (blocking: storage may be a NAS)."""
    for tmp, dest in pairs:
        os.replace(tmp, dest)


def discard(pairs: Staged) -> None:
    """Remove staged outputs never to be published (their attempt was refused or failed)."""
    for tmp, _ in pairs:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_write(dest: Path, mode: str = "w") -> Iterator[IO[str]]:
    with atomic_path(dest) as tmp, open(tmp, mode, encoding="utf-8") as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
