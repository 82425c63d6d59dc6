"""What the command groups declare their commands with (control/cli/groups/): the builder, the
flags several commands share, bounded argument types."""

from __future__ import annotations

import argparse
import datetime
import importlib
import math
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from control.core.errors import EXIT_USAGE
from control.core.tasktypes import ALL_TYPES

# the types a TYPE argument takes (checked once the inventory is read: see commands/common.py)
TYPES_HELP = f"{', '.join(ALL_TYPES)}, or a command type the inventory declares"

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


PRIORITY_MAX = 1_000_000  # the priority column is a 32-bit integer: keep well inside it
COUNT_MAX = 100_000  # tasks one `enqueue` may add
SECONDS_MAX = 366 * 86400.0  # a year: longer than any delay, timeout or lease that makes sense


def _whole(name: str, lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be a whole number, not {text!r}"
            ) from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be between {lo} and {hi}, not {value}")
        return value

    return parse


def _positive(name: str, hi: int = 1_000_000) -> Callable[[str], int]:
    return _whole(name, 1, hi)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seconds must be a number, not {text!r}") from None
    if not math.isfinite(value) or not 0 <= value <= SECONDS_MAX:
        raise argparse.ArgumentTypeError(
            f"seconds must be between 0 and {SECONDS_MAX:.0f}, not {text!r}"
        )
    return value


def _date(text: str) -> str:
    """YYYY-MM-DD -> YYYYMMDD (yt-dlp's and the feeds' upload_date)."""
    try:
        return datetime.date.fromisoformat(text).strftime("%Y%m%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (give YYYY-MM-DD)") from None


def item_told_flags(sp: argparse.ArgumentParser) -> None:
    """What an item's transcription is told (`add`, `source add`: each item it finds)."""
    sp.add_argument(
        "--language",
        metavar="CODE",
        help="the spoken language (Whisper's code, e.g. en, de): no detection, no guessing",
    )
    sp.add_argument(
        "--prompt",
        metavar="TEXT",
        help="an initial prompt for Whisper: the names, jargon and spelling the speech uses",
    )


def _duration(text: str) -> float:
    """90, 90s, 30m, 2h, 7d -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    scale = units.get(t[-1:])
    number = t[:-1] if scale else t
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a duration is a number with s, m, h or d (90s, 30m, 2h, 7d), not {text!r}"
        ) from None
    if not math.isfinite(value) or not 0 < value <= SECONDS_MAX:
        raise argparse.ArgumentTypeError(f"a duration must be positive, up to a year, not {text!r}")
    return value


def _lazy(ref: str) -> Command:
    """The command `module:function` of control/cli/commands/, imported when it runs: each
    command module loads what it needs at its top, and `agent run` loads none of the others
    (a worker's agent stays light)."""
    module, _, name = ref.partition(":")

    async def run(args: argparse.Namespace) -> int:
        func: Command = getattr(importlib.import_module(f"control.cli.commands.{module}"), name)
        return await func(args)

    run.__name__ = name
    return run


# -- parser -------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (the contract) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


ENVIRONMENT = """\
environment:
  CONTENTCTL_HOME          state dir: embedded PostgreSQL, logs, default storage
                           (default: $XDG_DATA_HOME/contentctl or ~/.local/share/contentctl;
                           on macOS ~/Library/Application Support/contentctl)
  CONTENTCTL_INVENTORY     inventory file (default: ./inventory.yaml, else $CONTENTCTL_HOME's)
  CONTENTCTL_DATABASE_URL  an external PostgreSQL (default: the embedded server)

exit codes: 0 success; 1 the operation failed; 2 bad usage or input, or no database.
The commands, JSON keys and states scripts rely on: README.md and docs/contract.md.
Shell completion: eval "$(contentctl completion bash)" (or zsh, fish)."""


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  contentctl {line}" for line in lines)


Audit = str | Callable[[argparse.Namespace], str | None]


class Commands:
    """Where each command group declares its commands (control/cli/groups/): the parser, the
    handler (`module:function` of control/cli/commands/, imported when it runs: `agent run`
    loads none of the others), help and examples, and whether a run is an operator action
    the audit log records (`audit`: its name, or a function of the arguments for commands
    that are actions only with some of them)."""

    def __init__(self, sub: Any, common: argparse.ArgumentParser) -> None:
        self.sub = sub
        self.common = common

    def add(
        self,
        name: str,
        handler: str | None,
        help_text: str,
        examples: tuple[str, ...],
        *,
        audit: Audit | None = None,
        **kw: Any,
    ) -> argparse.ArgumentParser:
        """A top-level command; `handler` None for a group of its own (`db`, `agent`...)."""
        return self._parser(self.sub, name, handler, help_text, examples, audit, **kw)

    def group(self, name: str, help_text: str, examples: tuple[str, ...]) -> Any:
        """A command group (`db`, `agent`...): its verbs are added with `action`."""
        gp = self.add(name, None, help_text, examples)
        return gp.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)

    def action(
        self,
        group: Any,
        name: str,
        handler: str,
        help_text: str,
        examples: tuple[str, ...],
        *,
        audit: Audit | None = None,
    ) -> argparse.ArgumentParser:
        """One verb of a group (`db migrate`, `agent drain`...)."""
        return self._parser(group, name, handler, help_text, examples, audit)

    def _parser(
        self,
        where: Any,
        name: str,
        handler: str | None,
        help_text: str,
        examples: tuple[str, ...],
        audit: Audit | None,
        **kw: Any,
    ) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = where.add_parser(
            name,
            parents=[self.common] if handler is not None else [],
            help=help_text,
            description=help_text,
            epilog=_examples(*examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            **kw,
        )
        if handler is not None:
            sp.set_defaults(func=_lazy(handler), audit_as=audit)
        return sp


def json_flag(sp: argparse.ArgumentParser, what: str = "machine-readable output") -> None:
    sp.add_argument("--json", action="store_true", help=what)


def hosts_flags(
    sp: argparse.ArgumentParser, what: str = "hosts to tell", every: str = "every host"
) -> None:
    """HOST... or --all: the hosts an agent command or provisioning acts on."""
    sp.add_argument("hosts", nargs="*", metavar="HOST", help=what)
    sp.add_argument("--all", action="store_true", help=every)


def host_keys_flag(sp: argparse.ArgumentParser) -> None:
    """Commands that reach hosts over SSH: trust a host key seen for the first time."""
    sp.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        help="record host keys seen for the first time (changed keys: never)",
    )


def limit_flag(sp: argparse.ArgumentParser, default: int = 50) -> None:
    sp.add_argument(
        "--limit",
        type=_positive("--limit"),
        default=default,
        help=f"at most this many (default {default})",
    )


def parallel_flag(sp: argparse.ArgumentParser, default: int) -> None:
    sp.add_argument(
        "--parallel",
        type=_positive("--parallel"),
        default=default,
        help=f"hosts at once (default {default})",
    )


def common_flags() -> argparse.ArgumentParser:
    """The flags every command takes."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--inventory",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="inventory file (default: ./inventory.yaml, then $CONTENTCTL_HOME)",
    )
    common.add_argument(
        "--db",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="PostgreSQL URL (default: $CONTENTCTL_DATABASE_URL, else embedded)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks and debug logs",
    )
    return common
