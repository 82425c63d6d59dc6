"""status, enqueue, tasks, task, retry, cancel."""

from __future__ import annotations

import argparse
import logging
import sys

from control.cli import output
from control.cli.commands.common import Session
from control.core.errors import EXIT_FAILED, EXIT_OK, UsageError
from control.core.queue import UNFINISHED, Queue, TaskSpec, parse_payload
from control.head import status

log = logging.getLogger("contentctl")


async def cmd_status(args: argparse.Namespace) -> int:
    s = Session(args)
    async with s.database() as conn:
        snap = await status.snapshot(conn, s.inventory)
    output.render(args, snap, text=output.print_status)
    return EXIT_OK


async def cmd_enqueue(args: argparse.Namespace) -> int:
    s = Session(args)  # the inventory first: its command types are types too
    payload = parse_payload(args.payload)
    if args.unique_key and args.count > 1:
        raise UsageError(
            "--unique-key and --count > 1 contradict each other: enqueue one keyed task"
        )
    spec = TaskSpec(
        type=args.type,
        payload=payload,
        priority=args.priority,
        delay_s=args.delay,
        unique_key=args.unique_key,
        max_attempts=args.max_attempts,
        timeout_s=args.timeout,
    )
    spec.validate()
    async with s.database() as conn:
        results = await Queue(conn, s.inventory.task_types).enqueue([spec] * args.count)
    first, last = results[0], results[-1]
    one = "enqueued" if first.created else "already queued (same unique key)"
    output.render(
        args,
        [{"id": r.id, "created": r.created} for r in results],
        text=f"enqueued {len(results)} {args.type} tasks: {first.id}..{last.id}"
        if len(results) > 1
        else f"{one}: task {first.id}",
    )
    return EXIT_OK


async def cmd_tasks(args: argparse.Namespace) -> int:
    s = Session(args)
    async with s.database() as conn:
        from control.head import views  # the ORM's typed rows: only where they are read

        rows = await views.tasks(
            conn, state=args.state, task_type=args.type, host=args.host, limit=args.limit
        )
    output.render(args, [t.public() for t in rows], text=lambda _: output.print_tasks(rows))
    return EXIT_OK


async def cmd_task(args: argparse.Namespace) -> int:
    s = Session(args)
    async with s.database() as conn:
        from control.head import views

        t = await views.task(conn, args.id)
    if t is None:
        raise UsageError(f"no task {args.id}: see `contentctl tasks` for the list")
    output.render(args, t.public(), text=lambda _: output.print_task(t))
    return EXIT_OK


async def cmd_retry(args: argparse.Namespace) -> int:
    if not args.ids and not args.failed:
        raise UsageError("name task ids to retry, or --failed for every failed task")
    if args.ids and args.failed:
        raise UsageError("give task ids or --failed, not both")
    if args.type and not args.failed:
        raise UsageError("--type goes with --failed")
    s = Session(args)
    async with s.database() as conn:
        moved = await Queue(conn).retry(args.ids or None, args.type)
    missing = sorted(set(args.ids) - set(moved)) if args.ids else []
    if args.json:
        output.emit_json({"retried": moved, "not_retried": missing})
        return EXIT_FAILED if missing else EXIT_OK
    if moved:
        print(f"retrying {len(moved)} task(s): {output.id_list(moved)}")
    if missing:
        print(f"not failed, not retried: {output.id_list(missing)}", file=sys.stderr)
        return EXIT_FAILED
    if not moved:
        print("no failed tasks to retry")
    return EXIT_OK


async def cmd_cancel(args: argparse.Namespace) -> int:
    filtered = bool(args.type or args.state)
    if args.ids and filtered:
        raise UsageError("give task ids or --type/--state, not both")
    if not args.ids and not filtered:
        raise UsageError("name task ids to cancel, or select them with --type and/or --state")
    s = Session(args)
    async with s.database() as conn:
        rows = await Queue(conn).cancel(
            args.ids or None, types=args.type, states=args.state or UNFINISHED
        )
    now = [r["id"] for r in rows if r["state"] == "cancelled"]
    asked = [r for r in rows if r["state"] == "running"]
    missing = sorted(set(args.ids) - {r["id"] for r in rows})
    if args.json:
        output.emit_json(
            {
                "cancelled": now,
                "abort_requested": [{"id": r["id"], "host": r["host"]} for r in asked],
                "not_cancelled": missing,
            }
        )
        return EXIT_FAILED if missing else EXIT_OK
    if filtered and not rows:
        print("no unfinished tasks match")
    if now:
        print(f"cancelled: {output.id_list(now)}")
    for r in asked:
        print(f"task {r['id']}: running on {r['host']}; the agent was told to abort it")
    if missing:
        print(
            f"already finished or unknown, not cancelled: {output.id_list(missing)}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK
