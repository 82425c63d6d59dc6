"""`schedule list|add|pause|resume|remove`."""

from __future__ import annotations

from control.cli.declare import TYPES_HELP, Commands, _duration, json_flag


def configure(c: Commands) -> None:
    scs = c.group(
        "schedule",
        "recurring work: one task per tick, fleet-wide",
        ("schedule list", "schedule add nightly-noop noop --cron '0 3 * * *'"),
    )
    sp = c.action(
        scs, "list", "schedules:cmd_schedule_list", "every schedule", ("schedule list --json",)
    )
    json_flag(sp)
    sp = c.action(
        scs,
        "add",
        "schedules:cmd_schedule_add",
        "create or replace a schedule",
        ("schedule add hourly-noop noop --every 1h", "schedule add n sleep --cron '*/5 * * * *'"),
        audit="schedule add",
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
        sp = c.action(
            scs,
            name,
            "schedules:cmd_schedule_pause",
            text,
            (f"schedule {name} nightly-noop",),
            audit=f"schedule {name}",
        )
        sp.add_argument("name", metavar="NAME", help="the schedule's name")
        json_flag(sp)
