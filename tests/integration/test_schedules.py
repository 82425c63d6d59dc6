"""Recurring schedules: one task per tick fleet-wide (two processes ticking at once), one
catch-up for a missed day, bad input refused, and agents doing the ticking."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from control.core import db, schedules
from tests.helpers import contentctl, wait_for

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


async def _count(conn: db.AsyncConn) -> int:
    cur = await conn.execute("SELECT count(*) AS n FROM tasks WHERE type = 'noop'")
    return int((await cur.fetchone() or {})["n"])


async def test_two_tickers_at_once_make_one_task_per_tick(db_url: str, conn: db.AsyncConn) -> None:
    await schedules.put(conn, schedules.Schedule("every-min", "noop", {}, every_s=60), now=T0)
    a, b = await db.connect(db_url), await db.connect(db_url)
    try:
        for minute in range(1, 6):
            now = T0 + timedelta(minutes=minute, seconds=1)
            made = await asyncio.gather(schedules.tick(a, now), schedules.tick(b, now))
            assert sum(len(m) for m in made) == 1, (minute, made)
    finally:
        await a.close()
        await b.close()
    assert await _count(conn) == 5


async def test_a_missed_day_runs_once_then_goes_on_from_now(conn: db.AsyncConn) -> None:
    await schedules.put(conn, schedules.Schedule("hourly", "noop", {}, cron="0 * * * *"), now=T0)
    later = T0 + timedelta(days=1, minutes=30)
    assert len(await schedules.tick(conn, later)) == 1  # 24 missed ticks: one catch-up
    assert await schedules.tick(conn, later) == []
    [row] = await schedules.all_schedules(conn)
    assert row["next_run_at"] == T0 + timedelta(days=1, hours=1)
    await schedules.pause(conn, "hourly", True)
    assert await schedules.tick(conn, later + timedelta(hours=3)) == []  # paused: nothing


async def test_bad_schedules_are_refused_and_nothing_is_written(
    agent_env: dict[str, str], conn: db.AsyncConn
) -> None:
    for args in (
        ("schedule", "add", "x", "noop", "--cron", "61 * * * *"),
        ("schedule", "add", "x", "noop", "--every", "0s"),
        ("schedule", "add", "x", "make_coffee", "--every", "1h"),
        ("schedule", "add", "x", "noop"),
        ("schedule", "pause", "nosuch"),
    ):
        out = contentctl(agent_env, *args)
        assert out.returncode == 2, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert await schedules.all_schedules(conn) == []


async def test_agents_tick_the_schedules(
    agent_env: dict[str, str],
    spawn_agent: Callable[..., subprocess.Popen[str]],
    agent_role_url: Callable[[str], str],
    conn: db.AsyncConn,
) -> None:
    """The ticker is an agent role: it ticks without reading a schedule's payload."""
    out = contentctl(agent_env, "schedule", "add", "fast", "noop", "--every", "1s", "--json")
    assert out.returncode == 0, out.stderr
    role_env = {**agent_env, "CONTENTCTL_DATABASE_URL": agent_role_url("ticker")}
    spawn_agent("--host", "ticker", "--heartbeat", "0.3", env=role_env)

    async def ran_three() -> bool:
        cur = await conn.execute(
            "SELECT count(DISTINCT unique_key) AS n FROM tasks "
            "WHERE type = 'noop' AND state = 'succeeded' AND unique_key LIKE 'schedule:fast:%'"
        )
        return int((await cur.fetchone() or {})["n"]) >= 3

    await wait_for(ran_three, 30, interval_s=0.2)
    listed = contentctl(agent_env, "schedule", "list")
    assert "fast" in listed.stdout and "every 1 s" in listed.stdout


async def test_a_cron_runs_in_its_time_zone_and_schedules_answer_in_json(
    agent_env: dict[str, str], conn: db.AsyncConn
) -> None:
    """`--timezone`: 03:00 Berlin is 01:00 or 02:00 UTC by the season (before: UTC only, said
    nowhere); pause, resume and remove answer `--json` with one document, and a removed
    schedule is gone."""
    from zoneinfo import ZoneInfo

    out = contentctl(
        agent_env, "schedule", "add", "night", "noop", "--cron", "0 3 * * *",
        "--timezone", "Europe/Berlin", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    first = datetime.fromisoformat(json.loads(out.stdout)["next_run_at"])
    local = first.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (3, 0)
    assert first.astimezone(UTC).hour in (1, 2)
    bad = contentctl(agent_env, "schedule", "add", "x", "noop", "--cron", "0 3 * * *",
                     "--timezone", "Mars/Olympus")  # fmt: skip
    assert bad.returncode == 2 and "unknown time zone" in bad.stderr
    seven = contentctl(agent_env, "schedule", "add", "y", "noop", "--cron", "0 3 * * * * *")
    assert seven.returncode == 2
    for action in ("pause", "resume", "remove"):
        done = contentctl(agent_env, "schedule", action, "night", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"name": "night", "action": action}
    assert await schedules.all_schedules(conn) == []
    gone = contentctl(agent_env, "schedule", "remove", "night")
    assert gone.returncode == 2 and "no schedule named" in gone.stderr
