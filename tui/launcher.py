"""The `contentctl` console script: the dashboard with no command, the CLI otherwise.

It lives in tui/ so that control/ never imports the dashboard (import contracts)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from control.cli import main as cli

if TYPE_CHECKING:  # imported when the dashboard opens: `agent run` must stay light
    from control.head.api import ControlPlane


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    commands = {a for a in args if not a.startswith("-")}
    if not commands and not {"-h", "--help", "--version"} & set(args):
        return dashboard(args)
    # the composition root: the CLI gets the dashboard as a value (control/ never imports tui/)
    return cli.main(args, dashboard=_dashboard_for_demo)


def _plane(args: list[str]) -> ControlPlane:
    from control.core.inventory import load
    from control.core.settings import database_target, inventory_path
    from control.head.api import ControlPlane

    inv_path = db_url = None
    for flag, value in zip(args, [*args[1:], None], strict=False):
        if flag == "--inventory":
            inv_path = value
        elif flag == "--db":
            db_url = value
    inventory = load(inventory_path(inv_path))
    return ControlPlane(database_target(db_url, inventory.database), inventory)


def dashboard(args: list[str]) -> int:
    """`contentctl` alone: the dashboard (`--inventory`, `--db` as for every command)."""
    from control.core.errors import EXIT_USAGE, ContentctlError
    from tui.app import main as run

    try:
        plane = _plane(args)
    except ContentctlError as exc:
        print(f"contentctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run(plane)


async def _dashboard_for_demo() -> int:
    from tui.app import run_dashboard

    return await run_dashboard(_plane(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
