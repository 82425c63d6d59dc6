"""Which commands are operator actions, and their audit row: one per run of such a command,
written after it ends (its exit code or its one-line error), on a connection of its own so a
command's own failure cannot lose it. Read-only commands and dry runs are not recorded."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from control.core import audit

log = logging.getLogger(__name__)

TARGETS = ("hosts", "ids", "name", "url", "sources", "id", "host")


def action_of(args: argparse.Namespace) -> str | None:
    """`agent drain`, `retry`, ...: what the command declared (`audit=` beside it, in
    control/cli/groups/); None for a command that changes nothing, and for a dry run."""
    declared = getattr(args, "audit_as", None)
    if declared is None or getattr(args, "dry_run", False):
        return None
    return declared if isinstance(declared, str) else declared(args)


def targets_of(args: argparse.Namespace) -> list[Any]:
    out: list[Any] = []
    if getattr(args, "all", False):
        out.append("--all")
    for attr in TARGETS:
        value = getattr(args, attr, None)
        if isinstance(value, list):
            out.extend(value)
        elif value is not None and not isinstance(value, bool):
            out.append(value)
    if getattr(args, "command", None) == "media":
        out.extend((getattr(args, "words", None) or [])[1:])
    return out


async def record(args: argparse.Namespace, action: str, outcome: str) -> None:
    """Best effort: an action whose database is unreachable is not lost for want of an
    audit row, and says so at debug level."""
    from control.cli.commands.common import Session

    try:
        s = Session(args)
        async with s.database() as conn:
            await audit.record(conn, action, targets_of(args), outcome, via="cli")
    except Exception as exc:  # the command's own error has been reported already
        log.debug("audit row not written: %s", exc)
