"""`status`, `enqueue`, `tasks`, `task`, `retry`, `cancel`: the queue."""

from __future__ import annotations

from control.cli.commands.common import task_id
from control.cli.declare import (
    COUNT_MAX,
    PRIORITY_MAX,
    TYPES_HELP,
    Commands,
    _positive,
    _seconds,
    _whole,
    json_flag,
    limit_flag,
)
from control.core.tasktypes import STATES


def configure(c: Commands) -> None:
    sp = c.add(
        "status", "tasks:cmd_status", "fleet and queue snapshot", ("status", "status --json")
    )
    json_flag(sp, "machine-readable (keys in docs/contract.md)")

    sp = c.add(
        "enqueue",
        "tasks:cmd_enqueue",
        "add tasks to the queue",
        ("enqueue noop --count 100", "enqueue sleep --payload '{\"seconds\": 5}' --priority 10"),
        audit="enqueue",
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

    sp = c.add(
        "tasks",
        "tasks:cmd_tasks",
        "list tasks, newest first",
        ("tasks --state failed", "tasks --type transcribe --host mac-1 --limit 20 --json"),
    )
    sp.add_argument("--state", choices=STATES, help="only tasks in this state")
    sp.add_argument("--type", metavar="TYPE", help=f"only tasks of this type ({TYPES_HELP})")
    sp.add_argument("--host", help="only tasks run (or running) on this host")
    limit_flag(sp)
    json_flag(sp)

    sp = c.add("task", "tasks:cmd_task", "one task in full", ("task 42", "task 42 --json"))
    sp.add_argument("id", type=task_id, help="the task's id")
    json_flag(sp, "machine-readable (keys in docs/contract.md)")

    sp = c.add(
        "retry",
        "tasks:cmd_retry",
        "move failed tasks back to the queue",
        ("retry 42 43", "retry --failed --type transcribe"),
        audit="retry",
    )
    sp.add_argument("ids", type=task_id, nargs="*", metavar="ID", help="failed tasks' ids")
    sp.add_argument("--failed", action="store_true", help="every failed task")
    sp.add_argument("--type", metavar="TYPE", help="with --failed: only this type")
    json_flag(sp)

    sp = c.add(
        "cancel",
        "tasks:cmd_cancel",
        "cancel tasks (running ones: the agent aborts them)",
        ("cancel 42", "cancel --type download_youtube --state queued"),
        audit="cancel",
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
