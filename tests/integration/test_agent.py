"""The worker agent against a real queue: real agent processes, real task processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from control.core import db, fleet, readmodels
from control.core.queue import Queue, TaskSpec
from tests.conftest import kill_tree
from tests.helpers import (
    contentctl,
    fetch_task,
    holds,
    state_is,
    wait_for,
    wait_until,
    write_inventory,
)

pytestmark = pytest.mark.slow

Spawn = Callable[..., subprocess.Popen[str]]
FAST = ("--heartbeat", "0.5", "--lease", "2")


async def _state(conn: db.AsyncConn, task_id: int) -> str:
    return str((await fetch_task(conn, task_id))["state"])


async def _host(conn: db.AsyncConn, name: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT h.*, b.agent_state, extract(epoch FROM now() - b.last_heartbeat_at) AS age "
        "FROM hosts h LEFT JOIN host_beats b USING (name) WHERE h.name = %s",
        (name,),
    )
    row = await cur.fetchone()
    return dict(row) if row else None


async def _heartbeating(conn: db.AsyncConn, name: str) -> bool:
    row = await _host(conn, name)
    return bool(
        row and row["agent_state"] != "stopped" and row["age"] is not None and row["age"] < 2
    )


async def test_kill_9_mid_task_the_other_agent_finishes_it_exactly_once(
    spawn_agent: Spawn, queue: Queue, conn: db.AsyncConn
) -> None:
    a = spawn_agent("--host", "agent-a", *FAST)
    await wait_for(lambda: _heartbeating(conn, "agent-a"), 20)
    [e] = await queue.enqueue([TaskSpec("sleep", {"seconds": 2})])
    await wait_for(lambda: _running_on(conn, e.id, "agent-a"), 10)
    b = spawn_agent("--host", "agent-b", *FAST)
    await wait_for(lambda: _heartbeating(conn, "agent-b"), 20)

    child_pids = [c.pid for c in psutil.Process(a.pid).children(recursive=True)]
    os.kill(a.pid, signal.SIGKILL)  # nothing to hand back: the lease must do the work
    killed_at = await fleet.server_now(conn)

    await wait_for(state_is(conn, e.id, "succeeded"), 20)
    row = await fetch_task(conn, e.id)
    assert row["host"] == "agent-b" and row["attempts"] == 2
    # claimed again once agent-b wrote a beat (a touch every 12 beats) that found the sweep's
    # turn free (the dead session's lease lapsed) or the 2 s lease run out: at worst its second
    # touch after the kill, when the first came a moment before either
    touch_s = fleet.LIVENESS_EVERY * 0.5
    assert (row["started_at"] - killed_at).total_seconds() < 2 * touch_s + 1
    # the dead agent's task process did not outlive it
    await wait_for(lambda: _all_gone(child_pids), 10)
    assert b.poll() is None


async def test_a_killed_agents_long_lease_is_taken_over_in_seconds(
    spawn_agent: Spawn, queue: Queue, conn: db.AsyncConn
) -> None:
    """The default lease is 150 s, renewed once a minute: it is held by the agent's database
    session, so kill -9 (the session ends with the process) frees the task at the other
    agent's next written beat (a touch every 12 beats) once the grace is over (none here; the
    grace itself is tested in test_queue and test_network), not when the lease's time ends."""
    # a touch every 6 s; the lease stays the default, the grace after a session ends is 0
    beat = ("--heartbeat", "0.5", "--lease-grace", "0")
    a = spawn_agent("--host", "held-a", *beat)
    await wait_for(lambda: _heartbeating(conn, "held-a"), 20)
    [e] = await queue.enqueue([TaskSpec("sleep", {"seconds": 2})])
    await wait_for(lambda: _running_on(conn, e.id, "held-a"), 10)
    b = spawn_agent("--host", "held-b", *beat)
    await wait_for(lambda: _heartbeating(conn, "held-b"), 20)
    lease_left = (await fetch_task(conn, e.id))["lease_expires_at"] - datetime.now(UTC)
    assert lease_left.total_seconds() > 100

    os.kill(a.pid, signal.SIGKILL)
    killed = time.monotonic()
    await wait_for(lambda: _running_on(conn, e.id, "held-b"), 20, interval_s=0.1)
    taken_s = time.monotonic() - killed
    # at held-b's first touch after the kill that finds the sweep's turn free (the second, if
    # held-a took the turn a moment before it died), not in the 150 s of the lease
    assert taken_s < 2 * fleet.LIVENESS_EVERY * 0.5 + 2, taken_s
    await wait_for(state_is(conn, e.id, "succeeded"), 20)
    row = await fetch_task(conn, e.id)
    assert row["host"] == "held-b" and row["attempts"] == 2
    assert b.poll() is None


async def test_a_quiet_agent_is_online_while_its_session_lives_and_stale_once_it_ends(
    spawn_agent: Spawn, conn: db.AsyncConn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between two touches an agent writes nothing: its living database session says it is
    there (before, a beat older than three beats made it stale). When the session ends (kill
    -9), the dashboard's incremental read sees it stale within three beats of its last write."""
    from control.core.inventory import Inventory
    from control.head.status import HostsView

    monkeypatch.setattr(readmodels, "STALE_AFTER_S", 1.5)  # three beats of 0.5 s
    a = spawn_agent("--host", "quiet-a", "--heartbeat", "0.5")
    await wait_for(lambda: _heartbeating(conn, "quiet-a"), 20)
    view = HostsView()
    inventory = Inventory(path=None)

    async def state() -> tuple[str, float]:
        [entry] = [h for h in await view.hosts(conn, inventory) if h.name == "quiet-a"]
        return entry.state, entry.heartbeat_age_s or 0.0

    async def quiet_for_a_while() -> bool:
        st, age = await state()
        assert st == "online", (st, age)
        return age > 2 * readmodels.STALE_AFTER_S

    await wait_for(quiet_for_a_while, fleet.LIVENESS_EVERY * 0.5 + 3, interval_s=0.2)
    [row] = [r for r in await fleet.hosts_rows(conn) if r["name"] == "quiet-a"]
    assert row["session_alive"] is True and fleet.row_state(row) == "online"

    os.kill(a.pid, signal.SIGKILL)
    killed = time.monotonic()

    async def stale() -> bool:
        return (await state())[0] == "stale"

    await wait_for(stale, 5, interval_s=0.1)
    assert time.monotonic() - killed < 3
    [row] = [r for r in await fleet.hosts_rows(conn) if r["name"] == "quiet-a"]
    assert row["session_alive"] is False and fleet.row_state(row) == "stale"


async def _running_on(conn: db.AsyncConn, task_id: int, host: str) -> bool:
    row = await fetch_task(conn, task_id)
    return row["state"] == "running" and row["host"] == host


async def _all_gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)


async def test_sigterm_hands_back_and_the_next_agent_finishes_without_a_burned_attempt(
    spawn_agent: Spawn, queue: Queue, conn: db.AsyncConn
) -> None:
    [e] = await queue.enqueue([TaskSpec("sleep", {"seconds": 3})])
    a = spawn_agent("--host", "term-a", "--grace", "0.2", *FAST)
    await wait_for(lambda: _running_on(conn, e.id, "term-a"), 20)
    a.send_signal(signal.SIGTERM)
    a.communicate(timeout=30)
    assert a.returncode == 0
    row = await fetch_task(conn, e.id)
    assert row["state"] == "queued" and row["attempts"] == 0
    b = spawn_agent("--host", "term-b", "--burst", *FAST)
    b.communicate(timeout=60)
    row = await fetch_task(conn, e.id)
    assert row["state"] == "succeeded" and row["attempts"] == 1 and row["host"] == "term-b"


async def test_drain_undrain_restart_stop_reach_the_agent_and_are_acknowledged(
    spawn_agent: Spawn, agent_env: dict[str, str], queue: Queue, conn: db.AsyncConn
) -> None:
    a = spawn_agent("--host", "obey-1", *FAST)
    await wait_for(lambda: _heartbeating(conn, "obey-1"), 20)

    res = contentctl(agent_env, "agent", "drain", "obey-1")
    assert res.returncode == 0, res.stderr
    assert "obey-1: draining" in res.stdout
    await wait_for(lambda: _agent_state(conn, "obey-1", "drained"), 10)
    [e] = await queue.enqueue([TaskSpec("noop")])
    await holds(state_is(conn, e.id, "queued"), 1.5)  # three heartbeats: it claims nothing
    status = json.loads(contentctl(agent_env, "status", "--json").stdout)
    [h] = [h for h in status["hosts"] if h["name"] == "obey-1"]
    assert h["state"] == "drained" and h["idle_reason"] == "drained"

    res = contentctl(agent_env, "agent", "undrain", "obey-1")
    assert res.returncode == 0 and "obey-1: online" in res.stdout
    await wait_for(state_is(conn, e.id, "succeeded"), 10)

    before = (await _host(conn, "obey-1"))["started_at"]
    res = contentctl(agent_env, "agent", "restart", "obey-1")
    assert res.returncode == 0 and "restarting" in res.stdout, res.stderr
    await wait_for(lambda: _restarted(conn, "obey-1", before), 30)
    assert a.poll() is None  # the same process, re-executed, same host name
    [e2] = await queue.enqueue([TaskSpec("noop")])
    await wait_for(state_is(conn, e2.id, "succeeded"), 15)

    res = contentctl(agent_env, "agent", "stop", "obey-1")
    assert res.returncode == 0 and "stopping" in res.stdout
    a.communicate(timeout=30)
    assert a.returncode == 0
    assert (await _host(conn, "obey-1"))["agent_state"] == "stopped"
    cur = await conn.execute(
        "SELECT command, acked_at IS NOT NULL AS acked FROM agent_commands "
        "WHERE host = 'obey-1' ORDER BY id"
    )
    assert [(r["command"], r["acked"]) for r in await cur.fetchall()] == [
        ("drain", True),
        ("undrain", True),
        ("restart", True),
        ("stop", True),
    ]


async def test_status_shows_a_command_s_effect_as_soon_as_it_is_acknowledged(
    spawn_agent: Spawn, agent_env: dict[str, str], conn: db.AsyncConn
) -> None:
    """Before, `agent drain` said "acknowledged" and `status` said `online` for up to one
    heartbeat (30 s here, so the next beat cannot hide it)."""
    spawn_agent("--host", "slow-beat", "--heartbeat", "30")
    await wait_for(lambda: _heartbeating(conn, "slow-beat"), 20)

    def state() -> str:
        status = json.loads(contentctl(agent_env, "status", "--json").stdout)
        return str({h["name"]: h for h in status["hosts"]}["slow-beat"]["state"])

    for command, expected in (("drain", "drained"), ("undrain", "online")):
        res = contentctl(agent_env, "agent", command, "slow-beat")
        assert res.returncode == 0, res.stderr
        assert state() == expected, command


async def _agent_state(conn: db.AsyncConn, name: str, state: str) -> bool:
    row = await _host(conn, name)
    return bool(row and row["agent_state"] == state)


async def _restarted(conn: db.AsyncConn, name: str, before: Any) -> bool:
    row = await _host(conn, name)
    return bool(row and row["started_at"] != before and row["agent_state"] == "online")


async def test_commands_to_a_silent_agent_time_out_with_a_clear_message(
    agent_env: dict[str, str], conn: db.AsyncConn
) -> None:
    # A host whose heartbeat is fresh but whose agent does not answer (it is wedged).
    await conn.execute("INSERT INTO hosts (name) VALUES ('wedged')")
    await conn.execute("INSERT INTO host_beats (name, agent_state) VALUES ('wedged', 'online')")
    res = contentctl(agent_env, "agent", "drain", "wedged", "--timeout", "1")
    assert res.returncode == 1
    assert "wedged: no acknowledgement within 1 s" in res.stderr
    res = contentctl(agent_env, "agent", "stop", "no-such-host")
    assert res.returncode == 2 and "unknown host 'no-such-host'" in res.stderr


async def test_drain_deadline_hands_running_tasks_back_and_stays_drained(
    spawn_agent: Spawn, agent_env: dict[str, str], queue: Queue, conn: db.AsyncConn
) -> None:
    [e] = await queue.enqueue([TaskSpec("sleep", {"seconds": 60})])
    spawn_agent("--host", "deadline-1", *FAST)
    await wait_for(lambda: _running_on(conn, e.id, "deadline-1"), 20)
    res = contentctl(agent_env, "agent", "drain", "deadline-1", "--deadline", "1s")
    assert res.returncode == 0, res.stderr
    await wait_for(state_is(conn, e.id, "queued"), 10)
    row = await fetch_task(conn, e.id)
    assert row["attempts"] == 0  # handed back, not failed
    await wait_for(lambda: _agent_state(conn, "deadline-1", "drained"), 5)
    await holds(state_is(conn, e.id, "queued"), 1.0)  # and it does not take it again


async def test_postgres_restarted_under_a_running_agent_loses_nothing(
    own_pg_home: Path, spawn_agent: Spawn, agent_env: dict[str, str]
) -> None:
    from control.head.embedded import EmbeddedServer

    home = own_pg_home
    server = EmbeddedServer(home)
    url = server.ensure_running()
    pid = server.pid()
    try:
        conn = await db.open_url(url)
        ids = [
            e.id
            for e in await Queue(conn).enqueue(
                [TaskSpec("sleep", {"seconds": 3})] * 3 + [TaskSpec("noop")] * 5
            )
        ]
        await conn.close()
        env = dict(agent_env, CONTENTCTL_DATABASE_URL=url)
        agent = spawn_agent("--host", "survivor", "--concurrency", "3", *FAST, env=env)

        def running() -> int:
            with psycopg.connect(url) as c:
                row = c.execute("SELECT count(*) FROM tasks WHERE state = 'running'").fetchone()
                return int(row[0]) if row else 0

        wait_until("three tasks running", lambda: running() == 3, 20, interval=0.05)
        server.stop()  # under the agent, tasks in flight
        time.sleep(2.0)
        server.ensure_running()

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with psycopg.connect(url) as c:
                rows = c.execute(
                    "SELECT state, attempts FROM tasks WHERE id = ANY(%s)", (ids,)
                ).fetchall()
                beat = c.execute(
                    "SELECT last_heartbeat_at > now() - interval '2 seconds' "
                    "FROM host_beats WHERE name = 'survivor'"
                ).fetchone()
            if all(r[0] == "succeeded" for r in rows) and beat and beat[0]:
                break
            time.sleep(0.2)
        assert [r[0] for r in rows] == ["succeeded"] * len(ids)
        assert all(r[1] == 1 for r in rows)  # nothing ran twice
        assert beat and beat[0]  # heartbeats resumed
        assert agent.poll() is None
        agent.send_signal(signal.SIGTERM)
        agent.communicate(timeout=30)
        assert agent.returncode == 0
    finally:
        server.stop()
        if pid is not None and psutil.pid_exists(pid):
            os.kill(pid, signal.SIGKILL)


async def test_timeout_crash_and_memory_limit_fail_the_task_not_the_agent(
    spawn_agent: Spawn, agent_env: dict[str, str], queue: Queue, conn: db.AsyncConn
) -> None:
    write_inventory(agent_env, "worker_limits:\n  sleep: {rss_limit_mb: 150}\n")
    [slow] = await queue.enqueue([TaskSpec("sleep", {"seconds": 60}, timeout_s=1, max_attempts=1)])
    [crash] = await queue.enqueue([TaskSpec("fail", {"crash": True}, max_attempts=1)])
    [hog] = await queue.enqueue(
        [TaskSpec("sleep", {"seconds": 30, "allocate_mb": 400}, max_attempts=1)]
    )
    [ok] = await queue.enqueue([TaskSpec("noop")])
    agent = spawn_agent("--host", "tough", "--burst", "--concurrency", "4", *FAST)
    _, err = agent.communicate(timeout=60)
    assert agent.returncode == 0, err

    row = await fetch_task(conn, slow.id)
    assert row["state"] == "failed" and row["error_type"] == "Timeout"
    assert "timed out after 1 s" in row["error_message"]
    row = await fetch_task(conn, crash.id)
    assert row["state"] == "failed" and row["error_type"] == "ProcessCrashed"
    assert "signal 9" in row["error_message"]
    row = await fetch_task(conn, hog.id)
    assert row["state"] == "failed" and row["error_type"] == "MemoryLimit"
    assert "above the 150 MB limit" in row["error_message"]
    assert (await fetch_task(conn, ok.id))["state"] == "succeeded"


async def test_task_processes_stay_warm_and_a_crash_gets_a_fresh_one(
    spawn_agent: Spawn, queue: Queue, conn: db.AsyncConn
) -> None:
    [a] = await queue.enqueue([TaskSpec("sleep", {"seconds": 0}, priority=3)])
    [b] = await queue.enqueue([TaskSpec("sleep", {"seconds": 0}, priority=2)])
    agent = spawn_agent("--host", "warm", "--burst", *FAST)
    agent.communicate(timeout=60)
    pid_a = (await fetch_task(conn, a.id))["result"]["pid"]
    pid_b = (await fetch_task(conn, b.id))["result"]["pid"]
    assert pid_a == pid_b  # the same task process ran both


async def test_progress_reaches_the_database_and_stalls_are_flagged(
    spawn_agent: Spawn, agent_env: dict[str, str], queue: Queue, conn: db.AsyncConn
) -> None:
    write_inventory(agent_env, "worker_limits:\n  sleep: {stall_after: 1}\n")
    [moving] = await queue.enqueue([TaskSpec("sleep", {"seconds": 6})])
    [stuck] = await queue.enqueue([TaskSpec("sleep", {"seconds": 6, "progress": False})])
    spawn_agent("--host", "prog", "--concurrency", "2", *FAST)

    async def progressed() -> bool:
        row = await fetch_task(conn, moving.id)
        return bool(row["progress"] and row["progress"] > 0 and row["progress_stage"] == "sleeping")

    await wait_for(progressed, 15)

    async def flagged() -> bool:
        res = contentctl(agent_env, "status", "--json")
        hosts = {h["name"]: h for h in json.loads(res.stdout)["hosts"]}
        running = {r["id"]: r for r in hosts.get("prog", {}).get("running", [])}
        return (
            bool(running.get(stuck.id, {}).get("stalled"))
            and not running.get(moving.id, {"stalled": True})["stalled"]
        )

    await wait_for(flagged, 10, interval_s=0.3)


async def test_logs_reach_the_database_redacted_and_the_cli_shows_them(
    spawn_agent: Spawn, agent_env: dict[str, str], queue: Queue, conn: db.AsyncConn
) -> None:
    await queue.enqueue(
        [TaskSpec("fail", {"retryable": False, "message": "login failed, password=hunter2"})]
    )
    agent = spawn_agent("--host", "talker", "--burst", *FAST)
    agent.communicate(timeout=60)
    res = contentctl(agent_env, "logs", "talker", "--lines", "100")
    assert res.returncode == 0
    assert "failed" in res.stdout and "password=***" in res.stdout
    assert "hunter2" not in res.stdout
    log_file = Path(agent_env["CONTENTCTL_HOME"]) / "logs" / "agent-talker.jsonl"
    lines = [json.loads(x) for x in log_file.read_text().splitlines()]
    assert any("password=***" in x["message"] for x in lines)
    assert "hunter2" not in log_file.read_text()


async def test_claims_respect_daily_limits_across_restarts(
    spawn_agent: Spawn, agent_env: dict[str, str], queue: Queue, conn: db.AsyncConn
) -> None:
    write_inventory(agent_env, "worker_limits:\n  noop: {daily_limit: 3}\n")
    ids = [e.id for e in await queue.enqueue([TaskSpec("noop")] * 5)]
    for _ in range(2):  # the second run remembers the first run's claims
        agent = spawn_agent("--host", "capped", "--burst", *FAST)
        _, err = agent.communicate(timeout=60)
        assert agent.returncode == 0
    states = [await _state(conn, i) for i in ids]
    assert states.count("succeeded") == 3 and states.count("queued") == 2
    assert "daily_limit" in err


def _stderr_until(proc: subprocess.Popen[str], text: str, timeout_s: float) -> str:
    """stderr lines of a running process until one holds `text` (or the deadline)."""
    import selectors

    seen = ""
    sel = selectors.DefaultSelector()
    assert proc.stderr is not None
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and text not in seen:
        if sel.select(timeout=0.2):
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
    return seen


async def test_add_wait_says_which_stage_waits_and_why(
    spawn_agent: Spawn, agent_env: dict[str, str], conn: db.AsyncConn
) -> None:
    """Before, `add --wait` with nobody able to run the next stage waited silently forever."""

    def add_and_wait() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tui.launcher", "add", "http://127.0.0.1:9/x.ogg", "--wait"],
            env=agent_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    nobody = add_and_wait()
    try:
        said = _stderr_until(nobody, "no host has download_youtube enabled", 20)
        assert "waiting: download_youtube: no host has download_youtube enabled" in said, said
    finally:
        kill_tree(nobody.pid)
        nobody.communicate(timeout=10)

    spawn_agent("--host", "sleepy", *FAST)
    await wait_for(lambda: _heartbeating(conn, "sleepy"), 20)
    assert contentctl(agent_env, "agent", "drain", "sleepy").returncode == 0
    await conn.execute("DELETE FROM media_items")  # the same URL adds a new item
    await conn.execute("DELETE FROM tasks")
    drained = add_and_wait()
    try:
        said = _stderr_until(drained, "sleepy drained", 20)
        assert "no online host can run download_youtube now: sleepy drained" in said, said
    finally:
        kill_tree(drained.pid)
        drained.communicate(timeout=10)


async def test_an_agent_whose_stderr_nobody_reads_keeps_working(
    spawn_agent: Spawn, queue: Queue, conn: db.AsyncConn
) -> None:
    """The agent's stderr is a pipe this test never reads (spawn_agent reads it only at the
    end): before, the 64 KB pipe filled with per-task lines and the agent froze in a write,
    its tasks stuck `running`. 2,000 tasks log ~300 KB."""
    await queue.enqueue([TaskSpec("noop") for _ in range(2000)])
    spawn_agent("--host", "chatty", "--concurrency", "10", *FAST)

    async def all_done() -> bool:
        cur = await conn.execute("SELECT count(*) AS n FROM tasks WHERE state = 'succeeded'")
        return (await cur.fetchone() or {})["n"] == 2000

    await wait_for(all_done, 90, interval_s=0.5)

    # it still writes its beat (its minute's touch, every 12 beats): the loop is not stuck
    async def counted() -> bool:  # the beat after the last task wrote its counters
        row = await db.row(
            conn,
            "SELECT heartbeat->'counters'->>'done_this_run' AS n FROM host_beats"
            " WHERE name = 'chatty'",
        )
        return bool(row and row["n"] == "2000")

    await wait_for(counted, 10)
    quiet_from = time.monotonic()

    async def beat_since() -> bool:
        row = await _host(conn, "chatty")
        return row is not None and float(row["age"]) < time.monotonic() - quiet_from

    await wait_for(beat_since, fleet.LIVENESS_EVERY * 0.5 + 3, interval_s=0.2)


async def test_a_lone_task_after_an_idle_minute_starts_at_once(
    spawn_agent: Callable[..., subprocess.Popen[str]], queue: Queue, conn: db.AsyncConn
) -> None:
    """Batching and skipped heartbeats must not delay the first task after a quiet spell: an
    agent with the default 5 s heartbeat idles for a minute (its unchanged heartbeats written
    once a minute), then one task is enqueued: it starts within a fraction of a second
    (NOTIFY wakes the agent; the claim does not wait for a batch to fill)."""
    spawn_agent("--host", "quiet")

    async def registered() -> bool:
        row = await db.row(conn, "SELECT count(*) AS n FROM host_beats WHERE name = 'quiet'")
        return bool(row and row["n"])

    await wait_for(registered, 20)
    await asyncio.sleep(60)
    [task] = await queue.enqueue([TaskSpec("noop")])
    await wait_for(lambda: _done(conn, task.id), 10)
    row = await db.row(
        conn,
        "SELECT extract(epoch FROM started_at - created_at) AS wait_s FROM tasks WHERE id = %(id)s",
        {"id": task.id},
    )
    assert row and float(row["wait_s"]) < 0.5, row


async def _done(conn: db.AsyncConn, task_id: int) -> bool:
    return (await fetch_task(conn, task_id))["state"] == "succeeded"
