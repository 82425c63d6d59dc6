"""`demo` and `completion`."""

from __future__ import annotations

import argparse

from argcomplete.shell_integration import shellcode

from control.cli.commands.common import Session
from control.core.errors import EXIT_OK
from control.head import demo


async def cmd_demo(args: argparse.Namespace) -> int:
    s = Session(args)
    return await demo.run(
        s.target, s.inventory, agents=args.agents, headless=args.headless, dashboard=args.dashboard
    )


async def cmd_completion(args: argparse.Namespace) -> int:
    """The shell's completion script (argcomplete: completes commands, flags and choices)."""
    print(shellcode(["contentctl"], shell=args.shell))
    return EXIT_OK
