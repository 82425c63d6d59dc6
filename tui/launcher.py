"""The `contentctl` console script: the dashboard with no command, the CLI otherwise.

It lives in tui/ so that control/ never imports the dashboard (import contracts)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from control.cli import main as cli
from tui import HEAD_HINT

if TYPE_CHECKING:  # imported when the dashboard opens: `agent run` must stay light
    from control.head.api import ControlPlane

# The flags the dashboard itself takes (as every command does); any other word is the CLI's.
_DASHBOARD_VALUE_FLAGS = ("--inventory", "--db")
_DASHBOARD_FLAGS = ("--debug", "--read-only")
EXIT_USAGE = 2  # docs/contract.md (control.core.errors.EXIT_USAGE, not imported: startup time)


def _dashboard_args(args: list[str]) -> bool:
    """True when `args` hold nothing but the dashboard's own flags (and their values)."""
    i = 0
    while i < len(args):
        word = args[i]
        if word in _DASHBOARD_VALUE_FLAGS:
            i += 2
            continue
        if word in _DASHBOARD_FLAGS or word.split("=", 1)[0] in _DASHBOARD_VALUE_FLAGS:
            i += 1
            continue
        return False
    return True


def _has_terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno()) and os.isatty(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # closed or replaced streams
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # The shell asking for completions (`_ARGCOMPLETE`) never opens the dashboard; neither do
    # flags without a command (`contentctl --json`): the CLI answers both.
    if "_ARGCOMPLETE" not in os.environ and _dashboard_args(args):
        if not _has_terminal():
            print(
                "contentctl: error: the dashboard needs a terminal on stdin and stdout; give "
                "a command for scripts (e.g. `contentctl status --json`; see `contentctl --help`)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            return dashboard(args)
        except ImportError as exc:  # a worker's install: no dashboard here
            return _head_only(exc)
    # the composition root: the CLI gets the dashboard as a value (control/ never imports tui/)
    return cli.main(args, dashboard=_dashboard_for_demo, web=_web)


def _plane(args: list[str], *, client: str | None = None) -> ControlPlane:
    """The control plane for the dashboard's flags; `client`: a browser's session."""
    from control.core.inventory import load
    from control.core.settings import database_target, inventory_path
    from control.head.api import ControlPlane

    inv_path = db_url = None
    for i, word in enumerate(args):
        flag, eq, inline = word.partition("=")
        value = inline if eq else (args[i + 1] if i + 1 < len(args) else None)
        if flag == "--inventory":
            inv_path = value
        elif flag == "--db":
            db_url = value
    inventory = load(inventory_path(inv_path))
    return ControlPlane(
        database_target(db_url, inventory.database),
        inventory,
        read_only="--read-only" in args,
        via="dashboard" if client is None else "web",
        client=client,
    )


def dashboard(args: list[str]) -> int:
    """`contentctl` alone: the dashboard (`--inventory`, `--db` as for every command;
    `--read-only`: no actions, and the database role behind it cannot write)."""
    from control.core.errors import ContentctlError
    from tui.app import main as run

    try:
        plane = _plane(args)
    except ContentctlError as exc:
        print(f"contentctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run(plane)


def _head_only(exc: ImportError) -> int:
    print(f"contentctl: error: {HEAD_HINT} ({exc.name or exc} is missing)", file=sys.stderr)
    return EXIT_USAGE


async def _dashboard_for_demo() -> int:
    from tui.app import run_dashboard

    return await run_dashboard(_plane(sys.argv[1:]))


async def _web(args: Any, ready: Callable[[str], None]) -> int:
    """`contentctl web`: the dashboard served to browsers (tui/web.py); `ready(url)` once
    it listens."""
    try:
        from tui.web import WebOptions, serve
    except ImportError as exc:
        from control.core.errors import ContentctlError

        raise ContentctlError(f"{HEAD_HINT} ({exc.name} is missing)") from None

    options = WebOptions(
        listen=args.listen,
        port=args.port,
        read_only=args.read_only,
        max_sessions=args.max_sessions,
        inventory=getattr(args, "inventory", None),
        database_url=getattr(args, "db", None),
        new_token=args.new_token,
    )
    return await serve(options, ready=ready)


if __name__ == "__main__":
    sys.exit(main())
