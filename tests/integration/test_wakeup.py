"""One announcement, one agent: an idle fleet does not all claim for one task (agent/wakeup.py),
and never leaves a claimable task unclaimed while an idle agent that runs it exists."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.runner import Agent, AgentConfig
from control.core import db
from control.core.queue import Queue, TaskSpec
from tests.helpers import fetch_task, holds, state_is, wait_for

FLEET = 20


async def _sessions(conn: db.AsyncConn) -> dict[str, dict[str, Any]]:
    """Each host's agent's own connection (the one holding its session key): its last
    statement and when it ran, as the server saw them."""
    cur = await conn.execute(
        """
        SELECT b.name, a.query, a.state_change
        FROM host_beats AS b
        JOIN pg_locks AS l ON l.locktype = 'advisory' AND l.objid::bigint::integer = b.session_key
             AND l.classid = 1668049782::oid AND l.objsubid = 2 AND l.granted
        JOIN pg_stat_activity AS a ON a.pid = l.pid
        """
    )
    return {str(r["name"]): dict(r) for r in await cur.fetchall()}


async def _peers_known(conn: db.AsyncConn, n: int) -> bool:
    cur = await conn.execute(
        "SELECT count(*) AS k FROM host_beats WHERE (heartbeat->>'peers')::int = %s", (n,)
    )
    row = await cur.fetchone()
    return bool(row) and int(row["k"]) == n


@pytest.fixture
async def idle_fleet(db_url: str, conn: db.AsyncConn) -> AsyncIterator[list[Agent]]:
    """FLEET agents that run noop and one that runs only transcribe, all idle and each knowing
    all the others."""
    agents = [
        Agent(
            AgentConfig(
                host=f"w{i:02}", enabled_tasks=("noop", "sleep"), heartbeat_s=0.5, max_concurrent=1
            ),
            db_url,
        )
        for i in range(FLEET)
    ]
    agents.append(
        Agent(AgentConfig(host="gpu", enabled_tasks=("transcribe",), heartbeat_s=0.5), db_url)
    )
    runners = [asyncio.create_task(a.run()) for a in agents]
    try:
        await wait_for(lambda: _peers_known(conn, FLEET + 1), timeout_s=30)
        yield agents
    finally:
        for a in agents:
            a.request_stop()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await asyncio.gather(*runners, return_exceptions=True)


async def test_a_task_into_an_idle_fleet_is_claimed_by_one_agent_within_a_second(
    idle_fleet: list[Agent], queue: Queue, conn: db.AsyncConn
) -> None:
    for _ in range(5):  # five announcements, each ordering the fleet afresh
        before = await _sessions(conn)
        t0 = time.monotonic()
        [e] = await queue.enqueue([TaskSpec("noop")])

        await wait_for(state_is(conn, e.id, "running", "succeeded"), timeout_s=1.0, interval_s=0.01)
        assert time.monotonic() - t0 < 1.0
        await wait_for(state_is(conn, e.id, "succeeded"), timeout_s=5)

        # the ranks after the first would have claimed by now
        await holds(functools.partial(_few_woken, conn, before), 0.3)
        moved = await _woken(conn, before)
        winner = (await fetch_task(conn, e.id))["host"]
        # the winner, and at most one more: a rank whose step ran out before the answer came
        # (a heartbeat written in between counts here too)
        assert winner in moved
        assert len(moved) <= 3, moved
        assert "gpu" not in moved  # woken for a type it does not run: it stayed asleep


async def test_tasks_are_never_left_waiting_when_the_first_ranks_are_busy(
    idle_fleet: list[Agent], queue: Queue, conn: db.AsyncConn
) -> None:
    """Half the fleet busy with long tasks (one task at a time each): every new task still
    starts within a second, the busy first ranks passing it on at once."""
    long = await queue.enqueue([TaskSpec("sleep", {"seconds": 60, "progress": False})] * 10)
    for e in long:
        await wait_for(state_is(conn, e.id, "running"), timeout_s=10)
    cur = await conn.execute("SELECT host FROM tasks WHERE type = 'sleep'")
    busy = {str(r["host"]) for r in await cur.fetchall()}
    for _ in range(10):
        before = await _sessions(conn)
        t0 = time.monotonic()
        [e] = await queue.enqueue([TaskSpec("noop")])
        await wait_for(state_is(conn, e.id, "succeeded"), timeout_s=5)
        started = (await fetch_task(conn, e.id))["started_at"]
        assert started is not None and time.monotonic() - t0 < 5

        # the busy first ranks passed it on: the idle agent after them took it, and the
        # others stayed asleep (a pass woke every idle agent once: 10 of them); a rank woken
        # for nothing would have claimed by now
        await holds(functools.partial(_few_woken, conn, before, busy), 0.3)
    cur = await conn.execute(
        "SELECT max(started_at - created_at) AS worst FROM tasks WHERE type = 'noop'"
    )
    row = await cur.fetchone()
    assert row is not None and row["worst"].total_seconds() < 1.0


async def test_a_task_that_ends_with_nothing_announced_since_does_not_look_again(
    db_url: str, queue: Queue, conn: db.AsyncConn
) -> None:
    """Its claim took fewer than it had room for: nothing more was claimable, and whatever
    comes is announced. The end of the task costs the completion and nothing else (before:
    an empty claim and a due-time read per task); announced work still wakes it at once."""
    agent = Agent(
        AgentConfig(host="solo", enabled_tasks=("noop",), heartbeat_s=60, max_concurrent=2),
        db_url,
    )
    runner = asyncio.create_task(agent.run())
    try:

        async def up() -> bool:
            return "solo" in await _sessions(conn)

        await wait_for(up, timeout_s=10)
        for _ in range(3):
            [e] = await queue.enqueue([TaskSpec("noop")])
            await wait_for(state_is(conn, e.id, "succeeded"), timeout_s=5, interval_s=0.01)

            async def completion_last() -> bool:  # the completion was its last statement
                return "Group commit" in (await _sessions(conn))["solo"]["query"]

            await holds(completion_last, 0.3)  # a look after the end would be made by now
    finally:
        agent.request_stop()
        async with asyncio.timeout(15):
            await runner


async def _woken(
    conn: db.AsyncConn, before: dict[str, Any], busy: frozenset[str] | set[str] = frozenset()
) -> list[str]:
    """The hosts (not busy) whose session changed state since `before`: woken."""
    after = await _sessions(conn)
    return [
        h
        for h, st in after.items()
        if h not in busy and h in before and st["state_change"] != before[h]["state_change"]
    ]


async def _few_woken(
    conn: db.AsyncConn, before: dict[str, Any], busy: frozenset[str] | set[str] = frozenset()
) -> bool:
    moved = await _woken(conn, before, busy)
    assert len(moved) <= 3, moved
    return True
