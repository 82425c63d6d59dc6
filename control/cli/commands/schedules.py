"""`schedule list | add | pause | resume`: recurring work in the queue."""

from __future__ import annotations

import argparse

from control.cli import output
from control.cli.commands.common import Session
from control.core import schedules
from control.core.errors import EXIT_OK
from control.core.queue import parse_payload


async def cmd_schedule_list(args: argparse.Namespace) -> int:
    s = Session(args)
    async with s.database() as conn:
        rows = await schedules.all_schedules(conn)
    if args.json:
        output.emit_json(rows)
        return EXIT_OK
    if not rows:
        print("no schedules: `contentctl schedule add NAME TYPE --every 1h`")
        return EXIT_OK
    table = [
        [
            r["name"],
            r["task_type"],
            f"{r['cron']} ({r['timezone']})" if r["cron"] else f"every {r['every_s']:g} s",
            "paused" if r["paused"] else r["next_run_at"].isoformat(timespec="seconds"),
            r["last_run_at"].isoformat(timespec="seconds") if r["last_run_at"] else "-",
            r["last_task_id"] or "-",
        ]
        for r in rows
    ]
    print(output.table(["name", "type", "when", "next", "last", "last task"], table))
    return EXIT_OK


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
    if args.json:
        output.emit_json({"name": spec.name, "next_run_at": first.isoformat()})
    else:
        print(f"schedule {spec.name}: first run at {first.isoformat(timespec='seconds')}")
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
    if args.json:
        output.emit_json({"name": args.name, "action": action})
    else:
        print(f"schedule {args.name}: {done}")
    return EXIT_OK
