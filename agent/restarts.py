"""How this agent's previous run ended: the operator restarted it, it stopped cleanly, it
crashed (killed, out of memory, a power cut on a machine that kept running), or the machine
rebooted. A small file in the state dir says "running" while the agent runs; a clean stop
removes it, so a file left behind means the last run did not end by itself. The boot time it
holds tells a reboot from a crash. The answer travels in the heartbeat (`status --json`:
`last_restart`)."""

from __future__ import annotations

import contextlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

RESTARTED_BY = "CONTENTCTL_RESTARTED_BY"  # set by `agent restart`'s re-exec: "operator"


def begin(marker: Path | None) -> dict[str, Any]:
    """Read how the last run ended and mark this one as running."""
    by = os.environ.pop(RESTARTED_BY, None)
    boot = psutil.boot_time()
    previous: dict[str, Any] | None = None
    if marker is not None:
        with contextlib.suppress(OSError, ValueError):
            previous = json.loads(marker.read_text())
    if by == "operator":
        reason = "operator"
    elif previous is None:
        reason = "start"  # the first run here, or the last one stopped cleanly
    elif float(previous.get("boot_time") or 0) + 2 < boot:
        reason = "reboot"
    else:
        reason = "crash"
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if marker is not None:
        with contextlib.suppress(OSError):
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"pid": os.getpid(), "boot_time": boot, "at": now}))
    return {
        "reason": reason,
        "at": now,
        "previous_start": (previous or {}).get("at"),
    }


def end(marker: Path | None) -> None:
    """A clean stop: the next start says `start`, not `crash`."""
    if marker is not None:
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
