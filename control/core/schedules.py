"""Recurring schedules in the queue: a cron expression (croniter) or an interval, one task per
tick fleet-wide, whoever notices the tick first (agents tick on their heartbeat; any head
command may too). Exactly once through a compare-and-set on the tick plus a unique key per
schedule and tick; a missed tick (the fleet was down) runs once on catch-up, then the schedule
goes on from now, not once per missed tick."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from psycopg.types.json import Jsonb

from control.core import db, names, tasktypes
from control.core.errors import UsageError
from control.core.queue import Queue
from control.core.sql import q


@dataclass(frozen=True)
class Schedule:
    name: str
    task_type: str
    payload: dict[str, Any]
    cron: str | None = None
    every_s: float | None = None
    timezone: str = "UTC"  # a cron's fields are read in this zone (IANA name)


def next_after(s: Schedule | dict[str, Any], now: datetime) -> datetime:
    """The first tick strictly after `now` (a cron read in its schedule's time zone)."""
    cron = s.cron if isinstance(s, Schedule) else s.get("cron")
    every = s.every_s if isinstance(s, Schedule) else s.get("every_s")
    zone = (s.timezone if isinstance(s, Schedule) else s.get("timezone")) or "UTC"
    if cron:
        local = now.astimezone(ZoneInfo(zone))
        out: datetime = croniter(cron, local).get_next(datetime)
        return out.astimezone(UTC)
    assert every
    return now + timedelta(seconds=float(every))


def validate(s: Schedule) -> None:
    names.label(s.name, "schedule name")
    try:
        ZoneInfo(s.timezone)
    except (ValueError, ZoneInfoNotFoundError):
        raise UsageError(
            f"unknown time zone {s.timezone!r}: give an IANA name such as Europe/Berlin or UTC"
        ) from None
    if not tasktypes.is_known(s.task_type):
        raise UsageError(
            f"unknown task type {s.task_type!r}: use one of {', '.join(tasktypes.known())}"
        )
    if (s.cron is None) == (s.every_s is None):
        raise UsageError("a schedule has either --cron or --every, not both or neither")
    if s.cron is not None and (len(s.cron.split()) != 5 or not croniter.is_valid(s.cron)):
        raise UsageError(f"not a cron expression: {s.cron!r} (five fields: m h dom mon dow)")
    if s.every_s is not None and not s.every_s > 0:
        raise UsageError("--every must be longer than zero")


async def put(conn: db.AsyncConn, s: Schedule, now: datetime | None = None) -> datetime:
    """Create or replace a schedule; returns its first tick."""
    validate(s)
    first = next_after(s, now or datetime.now(UTC))
    params = {
        "name": s.name,
        "task_type": s.task_type,
        "payload": Jsonb(s.payload),
        "cron": s.cron,
        "every_s": s.every_s,
        "next_run_at": first,
        "timezone": s.timezone,
    }
    await conn.execute(q("schedule_upsert"), params)
    return first


async def tick(conn: db.AsyncConn, now: datetime | None = None) -> list[int]:
    """Enqueue the due schedules' tasks (each tick once, fleet-wide); returns the new task ids.
    `now` is injectable (tests; a head with its own clock). Through the schema's functions
    (migration 0015): an agent that ticks never reads a schedule's payload, which may hold keys."""
    now = now or datetime.now(UTC)
    queue = Queue(conn)
    made: list[int] = []
    for row in await db.rows(conn, q("schedules_due"), {"now": now}):
        policy = queue.policy(str(row["task_type"]))
        params = {
            "name": row["name"],
            "due": row["next_run_at"],
            "next": next_after(row, now),
            "max_attempts": policy.max_attempts,
            "timeout_s": policy.timeout_s,
        }
        task_id = (await db.rows(conn, q("schedule_fire"), params))[0]["id"]
        if task_id is not None:  # None: another process took this tick
            made.append(int(task_id))
    return made


async def all_schedules(conn: db.AsyncConn) -> list[dict[str, Any]]:
    return await db.rows(conn, q("schedules_all"))


async def remove(conn: db.AsyncConn, name: str) -> None:
    if name.startswith("source:"):
        raise UsageError(f"{name!r} polls a source: `contentctl source remove {name[7:]}`")
    if not await db.rows(conn, q("schedule_remove"), {"name": name}):
        raise UsageError(f"no schedule named {name!r}: see `contentctl schedule list`")


async def pause(conn: db.AsyncConn, name: str, paused: bool) -> None:
    if not await db.rows(conn, q("schedule_pause"), {"name": name, "paused": paused}):
        raise UsageError(f"no schedule named {name!r}: see `contentctl schedule list`")
