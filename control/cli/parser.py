"""The command line's parser: every command, flag, help text and example, bounded argument
types, and the table from command to its implementation in control/cli/commands/ (imported
when the command runs)."""

from __future__ import annotations

import argparse
import datetime
import importlib
import math
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from control import __version__
from control.cli.commands.common import task_id
from control.core.errors import EXIT_USAGE
from control.core.fleet import LOG_LEVELS
from control.core.stages import stages as stage_names
from control.core.tasktypes import ALL_TYPES, STATES

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


cmd_status = _lazy("tasks:cmd_status")
cmd_enqueue = _lazy("tasks:cmd_enqueue")
cmd_tasks = _lazy("tasks:cmd_tasks")
cmd_task = _lazy("tasks:cmd_task")
cmd_retry = _lazy("tasks:cmd_retry")
cmd_cancel = _lazy("tasks:cmd_cancel")
cmd_agent_run = _lazy("run:cmd_agent_run")
cmd_agent_command = _lazy("agents:cmd_agent_command")
cmd_agent_ssh = _lazy("agents:cmd_agent_ssh")
cmd_agent_forget = _lazy("agents:cmd_agent_forget")
cmd_logs = _lazy("agents:cmd_logs")
cmd_db_migrate = _lazy("database:cmd_db_migrate")
cmd_db_serve = _lazy("database:cmd_db_serve")
cmd_db_url = _lazy("database:cmd_db_url")
cmd_db_stop = _lazy("database:cmd_db_stop")
cmd_db_start = _lazy("database:cmd_db_start")
cmd_inventory = _lazy("fleet:cmd_inventory")
cmd_provision = _lazy("fleet:cmd_provision")
cmd_rollout = _lazy("fleet:cmd_rollout")
cmd_add = _lazy("media:cmd_add")
cmd_media = _lazy("media:cmd_media")
cmd_reconcile = _lazy("media:cmd_reconcile")


cmd_schedule_list = _lazy("schedules:cmd_schedule_list")
cmd_schedule_add = _lazy("schedules:cmd_schedule_add")
cmd_schedule_pause = _lazy("schedules:cmd_schedule_pause")
cmd_source_add = _lazy("sources:cmd_source_add")
cmd_source_list = _lazy("sources:cmd_source_list")
cmd_source_action = _lazy("sources:cmd_source_action")
cmd_storage_init = _lazy("storage:cmd_storage_init")
cmd_storage_check = _lazy("storage:cmd_storage_check")
cmd_prune = _lazy("operations:cmd_prune")
cmd_audit = _lazy("operations:cmd_audit")
cmd_alerts = _lazy("operations:cmd_alerts")
cmd_metrics_serve = _lazy("operations:cmd_metrics_serve")
cmd_demo = _lazy("extras:cmd_demo")
cmd_completion = _lazy("extras:cmd_completion")
cmd_web = _lazy("extras:cmd_web")


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


def build_parser() -> argparse.ArgumentParser:
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
    raw = argparse.RawDescriptionHelpFormatter

    p = _Parser(
        prog="contentctl",
        parents=[common],
        description="Control plane for a media-to-text processing fleet. "
        "With no command: the dashboard.",
        epilog=ENVIRONMENT,
        formatter_class=raw,
    )
    p.add_argument("--version", action="version", version=f"contentctl {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str, func: Command | None, help_text: str, examples: tuple[str, ...], **kw: Any
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(
            name,
            parents=[common] if func is not None else [],
            help=help_text,
            description=help_text,
            epilog=_examples(*examples),
            formatter_class=raw,
            **kw,
        )
        if func is not None:
            sp.set_defaults(func=func)
        return sp

    def action(
        group: Any,
        name: str,
        func: Command,
        help_text: str,
        examples: tuple[str, ...],
    ) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = group.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text,
            epilog=_examples(*examples),
            formatter_class=raw,
        )
        sp.set_defaults(func=func)
        return sp

    def json_flag(sp: argparse.ArgumentParser, what: str = "machine-readable output") -> None:
        sp.add_argument("--json", action="store_true", help=what)

    sp = add("status", cmd_status, "fleet and queue snapshot", ("status", "status --json"))
    json_flag(sp, "machine-readable (keys in docs/contract.md)")

    sp = add(
        "enqueue",
        cmd_enqueue,
        "add tasks to the queue",
        ("enqueue noop --count 100", "enqueue sleep --payload '{\"seconds\": 5}' --priority 10"),
    )
    sp.add_argument("type", metavar="TYPE", help=f"one of: {TYPES_HELP}")
    sp.add_argument(
        "--payload",
        metavar="JSON",
        help="the task's input, a JSON object (64 KiB at most, 64 levels deep)",
    )
    sp.add_argument(
        "--count",
        type=_positive("--count", COUNT_MAX),
        default=1,
        help=f"how many identical tasks (default 1, at most {COUNT_MAX:,})",
    )
    sp.add_argument(
        "--priority",
        type=_whole("--priority", -PRIORITY_MAX, PRIORITY_MAX),
        default=0,
        help="higher runs first (default 0)",
    )
    sp.add_argument("--unique-key", metavar="K", help="no-op if a live task has this key")
    sp.add_argument(
        "--delay",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="run no earlier than this many seconds from now (default 0)",
    )
    sp.add_argument(
        "--max-attempts",
        type=_positive("--max-attempts", 1000),
        default=None,
        help="attempts before the task fails for good (default: the type's policy)",
    )
    sp.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="kill an attempt running longer than this (default: the type's policy)",
    )
    json_flag(sp, "print the new tasks' ids as JSON")

    sp = add(
        "tasks",
        cmd_tasks,
        "list tasks, newest first",
        ("tasks --state failed", "tasks --type transcribe --host mac-1 --limit 20 --json"),
    )
    sp.add_argument("--state", choices=STATES, help="only tasks in this state")
    sp.add_argument("--type", metavar="TYPE", help=f"only tasks of this type ({TYPES_HELP})")
    sp.add_argument("--host", help="only tasks run (or running) on this host")
    sp.add_argument(
        "--limit", type=_positive("--limit"), default=50, help="at most this many (default 50)"
    )
    json_flag(sp)

    sp = add("task", cmd_task, "one task in full", ("task 42", "task 42 --json"))
    sp.add_argument("id", type=task_id, help="the task's id")
    json_flag(sp, "machine-readable (keys in docs/contract.md)")

    sp = add(
        "retry",
        cmd_retry,
        "move failed tasks back to the queue",
        ("retry 42 43", "retry --failed --type transcribe"),
    )
    sp.add_argument("ids", type=task_id, nargs="*", metavar="ID", help="failed tasks' ids")
    sp.add_argument("--failed", action="store_true", help="every failed task")
    sp.add_argument("--type", metavar="TYPE", help="with --failed: only this type")
    json_flag(sp)

    sp = add(
        "cancel",
        cmd_cancel,
        "cancel tasks (running ones: the agent aborts them)",
        ("cancel 42", "cancel --type download_youtube --state queued"),
    )
    sp.add_argument("ids", type=task_id, nargs="*", metavar="ID", help="tasks' ids")
    sp.add_argument(
        "--type",
        metavar="TYPE",
        action="append",
        help="every unfinished task of this type (repeat for several)",
    )
    sp.add_argument(
        "--state",
        choices=("queued", "scheduled", "running"),
        action="append",
        help="only tasks in this state (repeat for several; default: all unfinished)",
    )
    json_flag(sp)

    dbp = add("db", None, "the database: serve, url, migrate, stop", ("db url", "db migrate"))
    dbs = dbp.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    action(dbs, "migrate", cmd_db_migrate, "apply pending schema migrations", ("db migrate",))
    sp = action(
        dbs,
        "serve",
        cmd_db_serve,
        "make the embedded server reachable over TCP (password auth)",
        ("db serve --listen 10.0.0.5 --advertise head.lan",),
    )
    sp.add_argument("--listen", default="*", help="listen address(es) (default: all)")
    sp.add_argument(
        "--port", type=_positive("--port", 65535), default=5432, help="TCP port (default 5432)"
    )
    sp.add_argument(
        "--advertise",
        metavar="HOST",
        default=None,
        help="the address agents use to reach this machine (default: its FQDN)",
    )
    sp = action(
        dbs,
        "url",
        cmd_db_url,
        "the database URL to give agents",
        ("db url", "db url --host mac-1 --show-password"),
    )
    sp.add_argument(
        "--host", metavar="NAME", help="this host's own URL (its role agent_NAME, made if missing)"
    )
    sp.add_argument("--show-password", action="store_true", help="print the password too")
    action(
        dbs,
        "stop",
        cmd_db_stop,
        "stop the embedded server (it stays stopped until db start)",
        ("db stop",),
    )
    action(dbs, "start", cmd_db_start, "start the embedded server after db stop", ("db start",))

    ap = add(
        "agent",
        None,
        "run or control worker agents",
        ("agent run --host mac-1", "agent drain mac-1 --deadline 30m", "agent restart --all"),
    )
    ags = ap.add_subparsers(dest="agent_command", metavar="ACTION", required=True)
    sp = action(
        ags,
        "run",
        cmd_agent_run,
        "run an agent in the foreground here",
        ("agent run --host mac-1", "agent run --burst --concurrency 10"),
    )
    sp.add_argument("--host", help="host name (default: this machine's)")
    sp.add_argument("--burst", action="store_true", help="exit when no claimable work is left")
    sp.add_argument(
        "--concurrency",
        type=_positive("--concurrency", 1024),
        default=None,
        help="override max_concurrent_tasks",
    )
    sp.add_argument(
        "--grace",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM, how long running tasks may finish before they go back to the queue",
    )
    sp.add_argument(
        "--lease",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="task lease in seconds (default 150): renewed by the heartbeat once a minute",
    )
    sp.add_argument(
        "--lease-grace",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="how long a lease outlives its agent's database session (default 90): an agent "
        "whose network comes back in time keeps its work; a dead one's runs elsewhere after",
    )
    sp.add_argument(
        "--heartbeat",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="heartbeat interval (default 5)",
    )
    for name, text in (
        ("drain", "finish running tasks, claim nothing new (until undrain)"),
        ("undrain", "claim again after a drain"),
        ("restart", "drain, then restart the agent process (same host name)"),
        ("stop", "stop the agent (running tasks get a grace period, then go back to the queue)"),
    ):
        sp = action(
            ags, name, cmd_agent_command, text, (f"agent {name} mac-1", f"agent {name} --all")
        )
        sp.add_argument("hosts", nargs="*", metavar="HOST", help="hosts to tell")
        sp.add_argument("--all", action="store_true", help="every host")
        sp.add_argument(
            "--timeout",
            type=_seconds,
            default=20.0,
            metavar="SECONDS",
            help="how long to wait for the acknowledgement (default 20)",
        )
        if name in ("drain", "restart"):
            sp.add_argument(
                "--deadline",
                type=_duration,
                default=None,
                metavar="DURATION",
                help="hand running tasks back to the queue after this long (e.g. 90s, 30m, 2h)",
            )
        json_flag(sp, "one JSON object per host: host, ok, outcome, via")

    sp = action(
        ags,
        "forget",
        cmd_agent_forget,
        "remove a host the inventory no longer declares (refused while it holds tasks)",
        ("agent forget demo-1",),
    )
    sp.add_argument("host", metavar="HOST", help="the host to forget")
    json_flag(sp)
    sp = action(
        ags,
        "start",
        cmd_agent_ssh,
        "start the agent over SSH",
        ("agent start mac-1", "agent start --all"),
    )
    sp.add_argument("hosts", nargs="*", metavar="HOST", help="hosts to start")
    sp.add_argument("--all", action="store_true", help="every enabled ssh host")
    sp.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        help="record host keys seen for the first time (changed keys: never)",
    )
    sp.add_argument(
        "--parallel",
        type=_positive("--parallel"),
        default=10,
        help="hosts at once (default 10)",
    )
    json_flag(sp, "one JSON object per host: host, ok, outcome")

    sp = add(
        "logs",
        cmd_logs,
        "recent agent log lines (from the database)",
        ("logs mac-1 -f", "logs all --level WARNING --since 2h --json"),
    )
    sp.add_argument("host", metavar="HOST", help="a host name, or `all`")
    sp.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    sp.add_argument(
        "--lines", type=_positive("--lines"), default=50, help="how many lines (default 50)"
    )
    sp.add_argument(
        "--since",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="only lines from the last DURATION (90s, 30m, 2h)",
    )
    sp.add_argument(
        "--level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=None,
        help="only lines at this level and above",
    )
    json_flag(sp, "JSON lines: one object per log line")

    sp = add(
        "add",
        cmd_add,
        "add a video URL, a podcast feed (--podcast) or a local file",
        (
            "add https://www.youtube.com/watch?v=ID --lang de,he --wait",
            "add https://example.org/feed.xml --podcast",
            "add ~/talks/keynote.mp4",
        ),
    )
    sp.add_argument("source", metavar="SOURCE", help="a video URL, a feed URL, or a file")
    sp.add_argument("--podcast", action="store_true", help="SOURCE is a podcast feed")
    sp.add_argument("--lang", metavar="LANGS", help="translate into these, e.g. en,de,he")
    item_told_flags(sp)
    sp.add_argument(
        "--priority",
        type=_whole("--priority", -PRIORITY_MAX, PRIORITY_MAX),
        default=0,
        help="higher runs first (default 0)",
    )
    sp.add_argument("--wait", action="store_true", help="show progress until done or failed")
    json_flag(sp)

    sp = add(
        "media",
        cmd_media,
        "media items and their stages; `media retry ID [--from S]`",
        ("media", "media 7 --json", "media retry 7 --from transcribe"),
    )
    sp.add_argument("words", nargs="*", metavar="[retry] ID", help="an item, or retry ITEM")
    sp.add_argument(
        "--from",
        dest="from_stage",
        metavar="STAGE",
        help="with retry: the stage to start from (" + ", ".join(stage_names()) + ")",
    )
    sp.add_argument(
        "--limit", type=_positive("--limit"), default=50, help="at most this many (default 50)"
    )
    sp.add_argument("--source", metavar="ID|NAME", help="only the items this source found")
    json_flag(sp, "machine-readable (keys in docs/contract.md)")

    ip = add(
        "inventory",
        None,
        "validate or import the inventory",
        ("inventory check", "inventory import old/config.yaml -o inventory.yaml"),
    )
    ips = ip.add_subparsers(dest="inventory_command", metavar="ACTION", required=True)
    sp = action(ips, "check", cmd_inventory, "validate and summarise", ("inventory check --json",))
    json_flag(sp)
    sp = action(
        ips,
        "import",
        cmd_inventory,
        "convert the old fleet's config.yaml to an inventory",
        ("inventory import config.yaml -o inventory.yaml",),
    )
    sp.add_argument("legacy", metavar="LEGACY_CONFIG_YAML", help="the old fleet's config.yaml")
    sp.add_argument("--output", "-o", metavar="PATH", help="write here (default: stdout)")
    sp.add_argument("--force", action="store_true", help="overwrite --output")

    sp = add(
        "provision",
        cmd_provision,
        "set a host up over SSH: env, code, secrets, agent",
        ("provision mac-1 --dry-run", "provision --all --yes --parallel 20"),
    )
    sp.add_argument("hosts", nargs="*", metavar="HOST", help="hosts to provision")
    sp.add_argument("--all", action="store_true", help="every enabled ssh host")
    sp.add_argument("--dry-run", action="store_true", help="show what would change")
    sp.add_argument("--yes", "-y", action="store_true", help="no confirmation (for scripts)")
    sp.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        help="record host keys seen for the first time (changed keys: never)",
    )
    sp.add_argument(
        "--parallel", type=_positive("--parallel"), default=10, help="hosts at once (default 10)"
    )
    sp.add_argument(
        "--source", metavar="DIR", help="the code tree to ship (default: this installation's)"
    )
    json_flag(sp, "one JSON object per host with its steps")

    sp = add(
        "rollout",
        cmd_rollout,
        "ship new code to running hosts without losing work",
        ("rollout --all", "rollout mac-1 mac-2 --parallel 2"),
    )
    sp.add_argument("hosts", nargs="*", metavar="HOST", help="hosts to update")
    sp.add_argument("--all", action="store_true", help="every enabled ssh host")
    sp.add_argument(
        "--parallel", type=_positive("--parallel"), default=1, help="hosts at once (default 1)"
    )
    sp.add_argument(
        "--drain-timeout",
        type=_seconds,
        default=1800.0,
        metavar="SECONDS",
        help="how long a host may take to finish its running tasks (default 1800)",
    )
    sp.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        help="record host keys seen for the first time (changed keys: never)",
    )
    sp.add_argument("--source", metavar="DIR", help="the code tree to ship")
    json_flag(sp, "one JSON object per host with its steps")

    sp = add(
        "reconcile",
        cmd_reconcile,
        "compare the database with the storage root",
        ("reconcile", "reconcile --fix"),
    )
    sp.add_argument("--fix", action="store_true", help="re-queue, re-run or record")
    json_flag(sp)

    scp = add(
        "schedule",
        None,
        "recurring work: one task per tick, fleet-wide",
        ("schedule list", "schedule add nightly-noop noop --cron '0 3 * * *'"),
    )
    scs = scp.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)
    sp = action(scs, "list", cmd_schedule_list, "every schedule", ("schedule list --json",))
    json_flag(sp)
    sp = action(
        scs,
        "add",
        cmd_schedule_add,
        "create or replace a schedule",
        ("schedule add hourly-noop noop --every 1h", "schedule add n sleep --cron '*/5 * * * *'"),
    )
    sp.add_argument("name", metavar="NAME", help="the schedule's name (unique)")
    sp.add_argument("type", metavar="TYPE", help=f"the task type it enqueues: {TYPES_HELP}")
    when = sp.add_mutually_exclusive_group(required=True)
    when.add_argument("--every", type=_duration, metavar="DURATION", help="90s, 30m, 2h")
    when.add_argument(
        "--cron", metavar="EXPR", help="five cron fields: m h dom mon dow (in --timezone)"
    )
    sp.add_argument(
        "--timezone",
        metavar="ZONE",
        default="UTC",
        help="the time zone a --cron is read in, e.g. Europe/Berlin (default UTC)",
    )
    sp.add_argument(
        "--payload",
        metavar="JSON",
        help="the tasks' input, a JSON object (64 KiB at most, 64 levels deep)",
    )
    json_flag(sp)
    for name, text in (
        ("pause", "stop ticking (nothing is enqueued)"),
        ("resume", "tick again"),
        ("remove", "delete the schedule (the tasks it made stay)"),
    ):
        sp = action(scs, name, cmd_schedule_pause, text, (f"schedule {name} nightly-noop",))
        sp.add_argument("name", metavar="NAME", help="the schedule's name")
        json_flag(sp)

    srp = add(
        "source",
        None,
        "feeds, channels and playlists the fleet polls by itself; each new entry becomes an "
        "item once",
        (
            "source add https://example.org/feed.xml --podcast --every 1h",
            "source add https://www.youtube.com/@channel/videos --latest 3 --every 6h",
            "source list",
        ),
    )
    srs = srp.add_subparsers(dest="source_command", metavar="ACTION", required=True)
    sp = action(
        srs,
        "add",
        cmd_source_add,
        "add a feed, channel or playlist: polled now, then on its schedule (default hourly)",
        (
            "source add https://example.org/feed.xml --podcast --latest 2 --lang de",
            "source add https://www.youtube.com/playlist?list=PL... --reject-title '#shorts'",
        ),
    )
    sp.add_argument(
        "url", metavar="URL", help="a podcast feed (with --podcast), a channel or a playlist"
    )
    sp.add_argument(
        "--podcast", action="store_true", help="URL is a podcast feed (else: yt-dlp lists it)"
    )
    when = sp.add_mutually_exclusive_group()
    when.add_argument("--every", type=_duration, metavar="DURATION", help="poll every 30m, 2h...")
    when.add_argument("--cron", metavar="EXPR", help="poll on a cron schedule (in --timezone)")
    sp.add_argument(
        "--timezone",
        metavar="ZONE",
        default="UTC",
        help="the time zone a --cron is read in, e.g. America/New_York (default UTC)",
    )
    sp.add_argument(
        "--latest",
        type=_positive("--latest", 10_000),
        default=None,
        help=f"the first poll takes only the latest N entries (default {5})",
    )
    sp.add_argument(
        "--since",
        type=_date,
        metavar="DATE",
        help="the first poll takes only entries published since YYYY-MM-DD (undated: skipped)",
    )
    yt = sp.add_argument_group("yt-dlp options (override the inventory's pipeline.ytdlp)")
    yt.add_argument("--format", metavar="SELECTOR", help="yt-dlp format, e.g. bestaudio")
    yt.add_argument("--cookies", metavar="PATH", help="a cookies.txt on the workers (never copied)")
    yt.add_argument("--rate-limit", metavar="RATE", help="download rate cap: 500K, 2M")
    yt.add_argument(
        "--sleep", type=float, metavar="SECONDS", help="wait this long before each download"
    )
    yt.add_argument("--match-title", metavar="REGEX", help="take only entries whose title matches")
    yt.add_argument("--reject-title", metavar="REGEX", help="skip entries whose title matches")
    sp.add_argument("--lang", metavar="LANGS", help="translate its items into these")
    item_told_flags(sp)
    sp.add_argument(
        "--priority",
        type=_whole("--priority", -PRIORITY_MAX, PRIORITY_MAX),
        default=0,
        help="its items' priority (default 0)",
    )
    sp.add_argument("--name", help="a short name (default: from the URL)")
    json_flag(sp)
    sp = action(srs, "list", cmd_source_list, "every source and its last poll", ("source list",))
    json_flag(sp)
    for name, text in (
        ("poll", "poll now"),
        ("pause", "stop polling"),
        ("resume", "poll again"),
        ("remove", "forget the source (its items stay)"),
    ):
        sp = action(srs, name, cmd_source_action, text, (f"source {name} my-feed",))
        sp.add_argument("name", metavar="ID|NAME", help="the source's id or name")
        json_flag(sp)

    stp = add(
        "storage",
        None,
        "the fleet's shared storage root (a NAS mount): mark it, check every host's view",
        ("storage init", "storage check --json"),
    )
    sts = stp.add_subparsers(dest="storage_command", metavar="ACTION", required=True)
    sp = action(
        sts,
        "init",
        cmd_storage_init,
        "write the fleet's storage marker into the storage root (refused on an empty mount point)",
        ("storage init", "storage init --force"),
    )
    sp.add_argument(
        "--force",
        action="store_true",
        help="mark a root that is not a mount point, or not empty",
    )
    json_flag(sp)
    sp = action(
        sts,
        "check",
        cmd_storage_check,
        "the marker and free space on every host, from their heartbeats",
        ("storage check", "storage check --json"),
    )
    json_flag(sp, "machine-readable: root, storage_id, here, hosts")

    sp = add(
        "prune",
        cmd_prune,
        "remove finished rows past their retention (rolled up by day first) and expired "
        "media files",
        ("prune --dry-run", "prune --json"),
    )
    sp.add_argument(
        "--dry-run", action="store_true", help="count what would go and the disk it frees"
    )
    json_flag(sp, "machine-readable: tasks by state, other rows, files, bytes_freed")

    sp = add(
        "audit",
        cmd_audit,
        "operators' actions: who did what, on which hosts or tasks, and how it ended",
        ("audit", "audit --since 24h --json"),
    )
    sp.add_argument(
        "--since",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="only actions from the last DURATION (90s, 30m, 2h, 7d)",
    )
    sp.add_argument(
        "--limit", type=_positive("--limit"), default=200, help="at most this many (default 200)"
    )
    json_flag(sp)

    mp = add(
        "metrics",
        None,
        "Prometheus metrics of the fleet (and the head's alerts and daily prune)",
        ("metrics serve", "metrics serve --listen 0.0.0.0 --port 9464"),
    )
    mps = mp.add_subparsers(dest="metrics_command", metavar="ACTION", required=True)
    sp = action(
        mps,
        "serve",
        cmd_metrics_serve,
        "serve /metrics until stopped; also evaluates alerts and runs the daily prune",
        ("metrics serve", "metrics serve --no-prune"),
    )
    sp.add_argument(
        "--listen", default="127.0.0.1", metavar="ADDR", help="address (default 127.0.0.1)"
    )
    sp.add_argument(
        "--port", type=_whole("--port", 0, 65535), default=9464, help="port (default 9464)"
    )
    sp.add_argument("--no-alerts", action="store_true", help="do not evaluate alert rules here")
    sp.add_argument("--no-prune", action="store_true", help="do not run the daily prune here")

    alp = add(
        "alerts",
        None,
        "alert incidents and webhooks (rules: the inventory's alerts block)",
        ("alerts test", "alerts list --json"),
    )
    als = alp.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    sp = action(als, "test", cmd_alerts, "send one test message to every webhook", ("alerts test",))
    json_flag(sp)
    sp = action(
        als, "list", cmd_alerts, "recent incidents, open and closed", ("alerts list --json",)
    )
    sp.add_argument(
        "--limit", type=_positive("--limit"), default=50, help="at most this many (default 50)"
    )
    json_flag(sp)

    sp = add(
        "demo",
        cmd_demo,
        "embedded Postgres + local agents + sample work",
        ("demo", "demo --headless --agents 3"),
    )
    sp.add_argument(
        "--headless", action="store_true", help="no dashboard: print a summary and exit"
    )
    sp.add_argument(
        "--agents", type=_positive("--agents", 64), default=2, help="local agents (default 2)"
    )

    sp = add(
        "web",
        cmd_web,
        "the dashboard in a browser (a token always; one dashboard process per tab)",
        (
            "web",
            "web --read-only --port 8766",
            "web --listen 0.0.0.0   # plain HTTP: on a trusted network only",
        ),
    )
    sp.add_argument(
        "--listen",
        metavar="ADDRESS",
        default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1: this machine only)",
    )
    sp.add_argument(
        "--port", type=_positive("--port", 65535), default=8765, help="TCP port (default 8765)"
    )
    sp.add_argument(
        "--read-only",
        action="store_true",
        help="sessions without actions (no drain, restart, cancel, retry, provision, "
        "configure), as a database role that cannot write",
    )
    sp.add_argument(
        "--max-sessions",
        type=_positive("--max-sessions", 64),
        default=4,
        help="open tabs at once (each is a dashboard process, ~100 MB; default 4)",
    )
    sp.add_argument(
        "--new-token",
        action="store_true",
        help="replace the token in the keychain (links printed before stop working)",
    )

    sp = add(
        "completion",
        cmd_completion,
        "print the shell completion script",
        ("completion bash >> ~/.bashrc", 'eval "$(contentctl completion zsh)"'),
    )
    sp.add_argument("shell", choices=("bash", "zsh", "fish", "tcsh"), help="your shell")
    return p
