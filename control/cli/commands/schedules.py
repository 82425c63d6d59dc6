"""`schedule list | add | pause | resume`: recurring work in the queue."""

from __future__ import annotations

import argparse
from datetime import datetime

from control.cli import output
from control.cli.commands.common import Session
from control.core import schedules
from control.core.errors import EXIT_OK
from control.core.queue import parse_payload


async def cmd_schedule_list(args: argparse.Namespace) -> int:
    s = Session(args)
    async with s.database() as conn:
        rows = await schedules.all_schedules(conn)
    output.render(
        args,
        rows,
        [
            ("name", lambda r: r["name"]),
            ("type", lambda r: r["task_type"]),
            (
                "when",
                lambda r: (
                    f"{r['cron']} ({r['timezone']})" if r["cron"] else f"every {r['every_s']:g} s"
                ),
            ),
            (
                "next",
                lambda r: (
                    "paused" if r["paused"] else r["next_run_at"].isoformat(timespec="seconds")
                ),
            ),
            ("last", lambda r: _at(r["last_run_at"])),
            ("last task", lambda r: r["last_task_id"] or "-"),
        ],
        empty="no schedules: `contentctl schedule add NAME TYPE --every 1h`",
    )
    return EXIT_OK


def _at(when: datetime | None) -> str:
    return when.isoformat(timespec="seconds") if when else "-"


async def cmd_schedule_add(args: argparse.Namespace) -> int:
    s = Session(args)  # the inventory (no database yet): its command types are types too
    spec = schedules.Schedule(
        name=args.name,
        task_type=args.type,
        payload=parse_payload(args.payload),
        cron=args.cron,
        every_s=args.every,
        timezone=args.timezone,
    )
    schedules.validate(spec)  # before touching the database
    async with s.database() as conn:
        first = await schedules.put(conn, spec)
    output.render(
        args,
        {"name": spec.name, "next_run_at": first.isoformat()},
        text=f"schedule {spec.name}: first run at {first.isoformat(timespec='seconds')}",
    )
    return EXIT_OK


async def cmd_schedule_pause(args: argparse.Namespace) -> int:
    """pause, resume, remove."""
    s = Session(args)
    action = args.schedule_command
    async with s.database() as conn:
        if action == "remove":
            await schedules.remove(conn, args.name)
        else:
            await schedules.pause(conn, args.name, action == "pause")
    done = {"pause": "paused", "resume": "resumed", "remove": "removed"}[action]
    output.render(args, {"name": args.name, "action": action}, text=f"schedule {args.name}: {done}")
    return EXIT_OK
