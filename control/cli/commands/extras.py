"""`demo`, `web` and `completion`."""

from __future__ import annotations

import argparse
import sys

from argcomplete.shell_integration import shellcode

from control.cli import output
from control.cli.commands.common import Session
from control.core.errors import EXIT_OK, ContentctlError
from control.head import demo


async def cmd_demo(args: argparse.Namespace) -> int:
    s = Session(args)
    return await demo.run(
        s.target, s.inventory, agents=args.agents, headless=args.headless, dashboard=args.dashboard
    )


async def cmd_web(args: argparse.Namespace) -> int:
    """Serve the dashboard to browsers: the console script hands in the server (tui/)."""
    if args.web is None:
        raise ContentctlError("the web dashboard is not available from here: run `contentctl web`")
    Session(args)  # the inventory and database target are checked before anything listens
    if args.listen not in ("127.0.0.1", "::1", "localhost"):
        print(
            f"contentctl: warning: listening on {args.listen}: plain HTTP, reachable from other "
            "machines; anyone with the link acts with your rights (use --read-only, or a TLS "
            "proxy)",
            file=sys.stderr,
        )

    def ready(url: str) -> None:
        output.print_secret(url)  # the one line on stdout: the link, token and all, on purpose
        print(
            f"contentctl: serving the dashboard{' read-only' if args.read_only else ''} "
            f"(at most {args.max_sessions} tabs); Ctrl+C or SIGTERM stops",
            file=sys.stderr,
            flush=True,
        )

    code: int = await args.web(args, ready)
    return code


async def cmd_completion(args: argparse.Namespace) -> int:
    """The shell's completion script (argcomplete: completes commands, flags and choices)."""
    print(shellcode(["contentctl"], shell=args.shell))
    return EXIT_OK
