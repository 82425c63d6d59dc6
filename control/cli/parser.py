"""The command line's parser: the root, then each command group's declarations
(control/cli/groups/, one module a group, in the order `--help` lists them)."""

from __future__ import annotations

import argparse

from control import __version__
from control.cli.declare import (
    ENVIRONMENT,
    Command,
    Commands,
    _Parser,
    common_flags,
)
from control.cli.groups import (
    agents,
    database,
    extras,
    fleet,
    media,
    operations,
    schedules,
    sources,
    storage,
    tasks,
)

__all__ = ["Command", "build_parser"]

GROUPS = (tasks, database, agents, media, fleet, schedules, sources, storage, operations, extras)


def build_parser() -> argparse.ArgumentParser:
    common = common_flags()
    p = _Parser(
        prog="contentctl",
        parents=[common],
        description="Control plane for a media-to-text processing fleet. "
        "With no command: the dashboard.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"contentctl {__version__}")
    commands = Commands(p.add_subparsers(dest="command", metavar="COMMAND"), common)
    for group in GROUPS:
        group.configure(commands)
    return p
