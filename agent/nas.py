"""The agent mounts the fleet's NAS itself: at start, and again whenever the storage root loses
its marker, with backoff. macOS: `mount_smbfs -N //user@server/share POINT` (the password comes
from the user's keychain, where macOS keeps SMB passwords). Linux: `mount -t cifs` with a 0600
credentials file the agent writes from the keychain. The password is never in argv."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 5.0
BACKOFF_MAX_S = 300.0
MOUNT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class NasMount:
    server: str
    share: str
    user: str
    mount_point: Path
    platform: str  # darwin | linux


def mount_for(
    nas: dict[str, Any], host_mount_point: str | None, platform: str = sys.platform
) -> NasMount | None:
    """This host's NAS mount from the inventory's `nas:` block (None without one, or without
    a mount point for this platform)."""
    if not nas.get("url"):
        return None
    plat = "darwin" if platform == "darwin" else "linux"
    point = host_mount_point or nas.get("mount_point")
    if isinstance(point, dict):
        point = point.get(plat)
    if not point:
        return None
    parts = urlsplit(str(nas["url"]))
    return NasMount(
        server=parts.hostname or "",
        share=parts.path.strip("/"),
        user=str(nas["user"]),
        mount_point=Path(str(point)).expanduser(),
        platform=plat,
    )


def mount_command(m: NasMount, credentials: Path | None) -> list[str]:
    """The command that mounts the share (as data: tested without a NAS)."""
    if m.platform == "darwin":
        return ["mount_smbfs", "-N", f"//{quote(m.user)}@{m.server}/{m.share}", str(m.mount_point)]
    opts = [
        f"credentials={credentials}",
        f"uid={os.getuid()}",
        f"gid={os.getgid()}",
        "iocharset=utf8",
        "file_mode=0644",
        "dir_mode=0755",
    ]
    return [
        "mount",
        "-t",
        "cifs",
        f"//{m.server}/{m.share}",
        str(m.mount_point),
        "-o",
        ",".join(opts),
    ]


def write_credentials(path: Path, user: str, password: str) -> None:
    """The cifs credentials file: 0600 from its first byte, rewritten in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"username={user}\npassword={password}\n")
    os.chmod(path, 0o600)


class Mounter:
    """Mounts the NAS when asked and it is not mounted, at most once per backoff step."""

    def __init__(self, mount: NasMount, credentials: Path) -> None:
        self.mount = mount
        self.credentials = credentials
        self._next_try = 0.0
        self._delay = BACKOFF_MIN_S
        self.attempts = 0

    async def ensure(self) -> str | None:
        """Try to mount; None when mounted (or it is not time to try again), else why not."""
        from control.core.storage_health import is_mount_point

        m = self.mount
        if is_mount_point(m.mount_point):
            self._delay = BACKOFF_MIN_S
            return None
        if time.monotonic() < self._next_try:
            return None
        self.attempts += 1
        try:
            result = await asyncio.to_thread(self._mount)
        except (OSError, subprocess.SubprocessError) as exc:
            result = str(exc)
        if result is None:
            log.info("mounted the NAS //%s/%s at %s", m.server, m.share, m.mount_point)
            self._delay = BACKOFF_MIN_S
            return None
        self._next_try = time.monotonic() + self._delay
        log.warning(
            "mounting the NAS at %s failed (%s); trying again in %.0f s",
            m.mount_point,
            result,
            self._delay,
        )
        self._delay = min(self._delay * 2, BACKOFF_MAX_S)
        return result

    def _mount(self) -> str | None:
        m = self.mount
        creds = None
        if m.platform == "linux":
            from control.core.secrets import get_secret  # the keychain only when a NAS is set

            password = get_secret("nas_password")
            if password is None:
                return "no nas_password in this machine's keychain (contentctl provision)"
            write_credentials(self.credentials, m.user, password)
            creds = self.credentials
        m.mount_point.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            mount_command(m, creds),
            capture_output=True,
            text=True,
            timeout=MOUNT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            return (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return None
