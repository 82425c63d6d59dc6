"""Is this machine's storage root the fleet's shared storage, mounted and writable?

`contentctl storage init` writes a marker file holding the fleet's storage id into the storage
root (a NAS mount) and records the id in the database. An agent whose root lacks that marker
(the NAS is not mounted: the mount point is an empty local directory) or cannot be written
takes no task that needs storage, and says why in its heartbeat; diagnostic tasks keep running.
Without an id in the database (storage never initialised) there is nothing to check against:
the root only has to exist and be writable.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from control.core import db
from control.core.errors import ContentctlError, UsageError
from control.core.sql import q

MARKER = ".contentctl-storage"


@dataclass(frozen=True)
class Health:
    ok: bool
    error: str | None
    checked_at: str

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "error": self.error, "checked_at": self.checked_at}


def is_mount_point(path: Path) -> bool:
    """A mount point, bind mounts included (os.path.ismount misses a bind mount of a directory
    on the same file system; Linux lists every mount in /proc/self/mountinfo)."""
    if os.path.ismount(path):
        return True
    try:
        table = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return False
    target = str(path.resolve())
    for line in table.splitlines():
        fields = line.split()
        if len(fields) > 4 and _unescape(fields[4]) == target:
            return True
    return False


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def read_marker(root: Path) -> str | None:
    """The storage id in `root`'s marker, or None when there is none."""
    try:
        return str(json.loads((root / MARKER).read_text())["storage_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check(root: Path, expected: str | None) -> Health:
    """The root's health against the fleet's storage id (`expected`; None: not initialised).
    Never creates anything: a missing root is reported, not made."""
    now = datetime.now(UTC).isoformat(timespec="seconds")

    def bad(why: str) -> Health:
        return Health(False, why, now)

    if not root.is_dir():
        return bad(f"{root} does not exist (is the NAS mounted?)")
    try:
        # a question the file server itself must answer: a network filesystem answers stat()
        # from its attribute cache for a while after its server went quiet (sshfs: 20 s)
        os.statvfs(root)
    except OSError as exc:
        return bad(f"{root} is not answering ({exc.strerror or exc})")
    if expected is not None:
        found = read_marker(root)
        if found is None:
            return bad(f"no storage marker in {root} (is the NAS mounted?)")
        if found != expected:
            return bad(f"{root} holds another fleet's storage ({found[:8]}, not {expected[:8]})")
    if not os.access(root, os.W_OK | os.X_OK):
        return bad(f"{root} is not writable")
    return Health(True, None, now)


async def fleet_storage_id(conn: db.AsyncConn) -> str | None:
    row = await db.row(conn, q("storage_id"))
    return str(row["storage_id"]) if row else None


async def init(conn: db.AsyncConn, root: Path, *, force: bool = False) -> str:
    """Mark `root` as the fleet's storage. Refused, unless `force`, when `root` is not a mount
    point or holds files already (marking an empty mount point would make every agent trust a
    local directory). An existing marker is kept and recorded (re-running is harmless)."""
    if not root.is_dir():
        raise UsageError(f"storage root {root} does not exist: mount the NAS there first")
    existing = read_marker(root)
    if existing is None:
        if not force and not is_mount_point(root):
            raise UsageError(
                f"{root} is not a mount point: mount the NAS there first (or --force for "
                "storage that is not a mount)"
            )
        if not force and any(p.name != "lost+found" for p in root.iterdir()):
            raise UsageError(
                f"{root} is not empty and has no marker: is it the right share? (--force marks "
                "it anyway)"
            )
        existing = str(uuid.uuid4())
        tmp = root / f".{MARKER}.part"
        try:
            tmp.write_text(json.dumps({"storage_id": existing, "created_at": _now()}) + "\n")
            tmp.replace(root / MARKER)
        except OSError as exc:
            raise ContentctlError(f"cannot write the marker in {root}: {exc.strerror}") from None
    async with conn.transaction():
        await conn.execute(q("set_storage_id"), {"storage_id": existing})
    return existing


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
