"""The agent in its simplest form: real processes, a real queue."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.limits import TypeLimits
from agent.runner import Agent, AgentConfig
from control.core import db
from control.core.queue import Queue, TaskSpec
from control.core.tasktypes import ALL_TYPES
from tests.helpers import fetch_task, state_is, wait_for


@pytest.fixture
def declared_inventory(agent_env: dict[str, str]) -> None:
    Path(agent_env["CONTENTCTL_INVENTORY"]).write_text(
        "hosts:\n  declared-1:\n    address: 127.0.0.5\n    enabled_tasks: [noop]\n"
    )


def _agent(url: str, **kw: object) -> Agent:
    cfg = AgentConfig(host=str(kw.pop("host", "inproc")), enabled_tasks=ALL_TYPES, **kw)
    return Agent(cfg, url)


async def test_burst_agent_runs_everything_and_exits(
    spawn_agent: Callable[..., subprocess.Popen[str]], queue: Queue, conn: db.AsyncConn
) -> None:
    ok = await queue.enqueue([TaskSpec("noop")] * 20 + [TaskSpec("sleep", {"seconds": 0.3})] * 2)
    [bad] = await queue.enqueue([TaskSpec("fail", {"retryable": False})])
    p = spawn_agent("--host", "worker-x", "--burst", "--concurrency", "3")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "not in the inventory" in err  # undeclared, and said so
    for e in ok:
        assert (await fetch_task(conn, e.id))["state"] == "succeeded"
    assert (await fetch_task(conn, bad.id))["state"] == "failed"

    from control.core.inventory import Inventory
    from control.head import status

    snap = await status.hosts(conn, Inventory(path=None))
    [host] = [h for h in snap if h.name == "worker-x"]
    assert host.declared is False and host.state == "offline"  # it stopped
    assert set(host.enabled_tasks) == set(ALL_TYPES)


async def test_declared_host_claims_only_its_types(
    spawn_agent: Callable[..., subprocess.Popen[str]],
    queue: Queue,
    conn: db.AsyncConn,
    declared_inventory: None,
) -> None:
    [n] = await queue.enqueue([TaskSpec("noop")])
    [s] = await queue.enqueue([TaskSpec("sleep", {"seconds": 0})])
    p = spawn_agent("--host", "declared-1", "--burst")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert (await fetch_task(conn, n.id))["state"] == "succeeded"
    assert (await fetch_task(conn, s.id))["state"] == "queued"


async def test_notify_wakes_an_idle_agent_at_once(
    db_url: str, queue: Queue, conn: db.AsyncConn
) -> None:
    agent = _agent(db_url, poll_s=60.0)  # polling alone would take a minute
    runner = asyncio.create_task(agent.run())
    try:
        await wait_for(lambda: _host_seen(conn, "inproc"), timeout_s=10)
        await wait_for(lambda: agent.state.listening)  # idle, listening
        t0 = time.monotonic()
        [e] = await queue.enqueue([TaskSpec("noop")])
        await wait_for(state_is(conn, e.id, "succeeded"), timeout_s=5, interval_s=0.01)
        assert time.monotonic() - t0 < 2.0
    finally:
        agent.request_stop()
        await asyncio.wait_for(runner, 15)


async def test_an_idle_agent_sleeps_until_work_comes_due_and_wakes_for_retries_and_hand_backs(
    db_url: str, queue: Queue, conn: db.AsyncConn
) -> None:
    """An idle agent does not poll every few seconds: it sleeps until its next delayed or
    retrying task comes due, and every other way a task becomes claimable (an enqueue, a
    retry, a hand-back) announces it. Each must start on time with a minute-long poll."""
    agent = _agent(db_url, poll_s=60.0, idle_poll_s=60.0)
    runner = asyncio.create_task(agent.run())

    async def late_s(task_id: int) -> float:  # how long after it came due it started
        cur = await conn.execute(
            "SELECT extract(epoch FROM started_at - run_at)::float8 AS late FROM tasks"
            " WHERE id = %s",
            (task_id,),
        )
        return float((await cur.fetchone())["late"])

    try:
        await wait_for(lambda: _host_seen(conn, "inproc"), timeout_s=10)
        await wait_for(lambda: agent.state.listening)  # idle, listening
        # delayed: announced when enqueued, then slept until it comes due
        [later] = await queue.enqueue([TaskSpec("noop", delay_s=1.5)])
        await wait_for(state_is(conn, later.id, "succeeded"), timeout_s=10)
        assert await late_s(later.id) < 1.0

        # a retry: the failure is announced, the agent sleeps until the backoff ends (2-2.5 s)
        [flaky] = await queue.enqueue([TaskSpec("fail", {"retryable": True}, max_attempts=2)])
        await wait_for(state_is(conn, flaky.id, "failed"), timeout_s=15)
        assert (await fetch_task(conn, flaky.id))["attempts"] == 2
        assert await late_s(flaky.id) < 1.0  # the second attempt against the retry's time

        # a hand-back by another host: claimable again at once, and announced. Enqueued and
        # claimed in one transaction, so the agent is woken by the enqueue and finds nothing.
        other = await db.connect(db_url)
        try:
            async with other.transaction():
                await Queue(other).enqueue([TaskSpec("noop")])
                [held] = await Queue(other).claim("elsewhere", ["noop"])
            await asyncio.sleep(0.5)  # nothing for it: asleep for up to a minute
            t0 = time.monotonic()
            assert await Queue(other).release(held)
            await wait_for(state_is(conn, held.id, "succeeded"), timeout_s=5)
            assert time.monotonic() - t0 < 2.0
        finally:
            await other.close()
    finally:
        agent.request_stop()
        await asyncio.wait_for(runner, 15)


async def test_polling_is_the_fallback_without_notifications(
    db_url: str, queue: Queue, conn: db.AsyncConn
) -> None:
    agent = _agent(db_url, listen=False, poll_s=0.3)
    runner = asyncio.create_task(agent.run())
    try:
        await wait_for(lambda: _host_seen(conn, "inproc"), timeout_s=10)
        [e] = await queue.enqueue([TaskSpec("noop")])
        await wait_for(state_is(conn, e.id, "succeeded"), timeout_s=5)
    finally:
        agent.request_stop()
        await asyncio.wait_for(runner, 15)


async def test_sigterm_hands_the_running_task_back_without_burning_an_attempt(
    spawn_agent: Callable[..., subprocess.Popen[str]], queue: Queue, conn: db.AsyncConn
) -> None:
    [e] = await queue.enqueue([TaskSpec("sleep", {"seconds": 60})])
    p = spawn_agent("--host", "term-me", "--grace", "0.5")
    await wait_for(state_is(conn, e.id, "running"), timeout_s=20)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=20)
    assert p.returncode == 0
    row = await fetch_task(conn, e.id)
    assert row["state"] == "queued" and row["attempts"] == 0 and row["host"] is None


async def test_cancel_reaches_the_running_agent(
    db_url: str, queue: Queue, conn: db.AsyncConn
) -> None:
    agent = _agent(db_url, poll_s=60.0, heartbeat_s=60.0)  # only NOTIFY can tell it in time
    runner = asyncio.create_task(agent.run())
    try:
        [e] = await queue.enqueue([TaskSpec("sleep", {"seconds": 60})])
        await wait_for(state_is(conn, e.id, "running"), timeout_s=10)
        t0 = time.monotonic()
        await queue.cancel([e.id])
        await wait_for(state_is(conn, e.id, "cancelled"), timeout_s=5)
        assert time.monotonic() - t0 < 2.0
    finally:
        agent.request_stop()
        await asyncio.wait_for(runner, 15)


async def _host_seen(conn: db.AsyncConn, name: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM hosts WHERE name = %s", (name,))
    return await cur.fetchone() is not None


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


async def _heartbeat_body(conn: db.AsyncConn, name: str) -> dict[str, Any]:
    cur = await conn.execute("SELECT heartbeat FROM host_beats WHERE name = %s", (name,))
    row = await cur.fetchone()
    return dict(row["heartbeat"]) if row else {}


async def test_window_closed_on_the_agents_clock_then_open(
    db_url: str, queue: Queue, conn: db.AsyncConn
) -> None:
    clock = FakeClock(datetime(2026, 3, 2, 5, 0, tzinfo=UTC))
    limits = {"noop": TypeLimits.from_config({"window": {"start": "07:00", "end": "21:00"}})}
    # the fake clock jumps without waking anyone: a short poll notices
    agent = _agent(db_url, limits=limits, clock=clock, heartbeat_s=0.2, poll_s=0.2, idle_poll_s=0.2)
    runner = asyncio.create_task(agent.run())
    try:
        [e] = await queue.enqueue([TaskSpec("noop")])

        async def says_outside() -> bool:
            body = await _heartbeat_body(conn, "inproc")
            return body.get("idle_reason") == "outside_window" and body.get("idle_until") == (
                "2026-03-02T07:00:00+00:00"
            )

        await wait_for(says_outside, 10)
        assert (await fetch_task(conn, e.id))["state"] == "queued"
        clock.now = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
        await wait_for(state_is(conn, e.id, "succeeded"), 10)
    finally:
        agent.request_stop()
        await asyncio.wait_for(runner, 15)


async def test_max_concurrency_is_never_exceeded(
    db_url: str, queue: Queue, conn: db.AsyncConn
) -> None:
    ids = [e.id for e in await queue.enqueue([TaskSpec("sleep", {"seconds": 0.6})] * 5)]
    agent = _agent(db_url, max_concurrent=2, burst=True, heartbeat_s=0.2)
    runner = asyncio.create_task(agent.run())
    peak = 0
    saw_reason = False
    while not runner.done():
        cur = await conn.execute("SELECT count(*) AS n FROM tasks WHERE state = 'running'")
        peak = max(peak, (await cur.fetchone())["n"])
        saw_reason |= (await _heartbeat_body(conn, "inproc")).get(
            "idle_reason"
        ) == "max_concurrency"
        await asyncio.sleep(0.05)
    await runner
    assert peak == 2
    assert saw_reason
    assert all([await state_is(conn, i, "succeeded")() for i in ids])


async def test_a_side_task_that_dies_is_started_again_and_results_arrive(
    db_url: str, queue: Queue, conn: db.AsyncConn
) -> None:
    """Before, an outbox that died on an unexpected error never delivered finished results
    while their leases kept being renewed: the tasks stayed `running` for the agent's life."""
    [e] = await queue.enqueue([TaskSpec("noop")])
    agent = _agent(db_url, host="watched", burst=True, heartbeat_s=0.2)
    real_run = agent.outbox.run
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("outbox bug")
        await real_run()

    agent.outbox.run = flaky
    await asyncio.wait_for(agent.run(), 30)
    assert (await fetch_task(conn, e.id))["state"] == "succeeded"
    assert agent.side_restarts.get("outbox") == 1


async def test_a_side_task_that_ignores_its_cancel_does_not_keep_the_agent_alive(
    db_url: str, conn: db.AsyncConn, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """A side task that swallows its cancel (as 3.11's wait_for once made the heartbeat do)
    costs the stop a bounded wait: the agent still says its last words and exits."""
    import agent.runner as runner_mod

    monkeypatch.setattr(runner_mod, "SIDE_STOP_S", 0.5)
    agent = _agent(db_url, host="stubborn", poll_s=60.0)

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)  # the first cancel is dropped
        await asyncio.sleep(3600)  # a second one ends it

    agent._listener = stubborn
    runner = asyncio.create_task(agent.run())
    await wait_for(lambda: _host_seen(conn, "stubborn"), timeout_s=10)
    agent.request_stop()
    assert await asyncio.wait_for(runner, 10) == 0
    cur = await conn.execute("SELECT agent_state FROM host_beats WHERE name = 'stubborn'")
    assert (await cur.fetchone())["agent_state"] == "stopped"  # its last heartbeat went out
    assert "side task listener did not stop" in caplog.text
    # a test owns what it starts: the stubborn task ends now
    [stuck] = [t for t in asyncio.all_tasks() if t.get_name() == "listener"]
    stuck.cancel()
    await asyncio.wait([stuck], timeout=5)
    assert stuck.done()


async def test_an_idle_agent_writes_its_beat_once_every_twelve_beats(
    db_url: str, conn: db.AsyncConn
) -> None:
    """Nothing moves on an idle host: its beat is written every twelfth beat (the liveness
    touch, once a minute with the default 5 s beat), not at every one. (The storage check's own
    time changed at every beat and made each one a write.)"""
    # beats half a second apart: a touch every 6 s; the storage check stamps its time to the
    # second, so its time moves at every other beat
    agent = _agent(db_url, poll_s=60.0, heartbeat_s=0.5)
    runner = asyncio.create_task(agent.run())
    try:
        await wait_for(lambda: _host_seen(conn, "inproc"), timeout_s=10)
        await asyncio.sleep(1.0)  # started: its first beats written
        written = set()
        deadline = time.monotonic() + 7.0  # fourteen beats
        while time.monotonic() < deadline:
            cur = await conn.execute(
                "SELECT last_heartbeat_at FROM host_beats WHERE name = 'inproc'"
            )
            written.add((await cur.fetchone())["last_heartbeat_at"])
            await asyncio.sleep(0.02)
    finally:
        agent.request_stop()
        await asyncio.wait_for(runner, 15)
    assert 2 <= len(written) <= 3  # the beat read first, then one touch or two
