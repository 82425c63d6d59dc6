"""The queue's guarantees, asserted on rows in a real PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from control.core import db
from control.core.queue import Failure, Queue, StatsMark, TaskSpec
from tests.helpers import fetch_task, make_due, wait_for


async def test_claim_respects_priority_then_age_then_types(queue: Queue) -> None:
    low_old, high, low_new, sleep_t = await queue.enqueue(
        [
            TaskSpec("noop", priority=0),
            TaskSpec("noop", priority=5),
            TaskSpec("noop", priority=0),
            TaskSpec("sleep", priority=9),
        ]
    )
    claimed = [t.id for t in await queue.claim("h", ["noop"], limit=3)]
    assert claimed == [high.id, low_old.id, low_new.id]
    assert sleep_t.id not in claimed  # not an enabled type for this host


async def test_delayed_task_is_scheduled_until_due(queue: Queue, conn: db.AsyncConn) -> None:
    [e] = await queue.enqueue([TaskSpec("noop", delay_s=60)])
    assert (await fetch_task(conn, e.id))["state"] == "scheduled"
    assert await queue.claim("h", ["noop"]) == []
    await make_due(conn, e.id)
    [t] = await queue.claim("h", ["noop"])
    assert t.id == e.id


async def test_unique_key_is_a_noop_while_live(queue: Queue) -> None:
    [a] = await queue.enqueue([TaskSpec("noop", unique_key="episode-1")])
    [b] = await queue.enqueue([TaskSpec("noop", unique_key="episode-1")])
    assert a.created and not b.created and b.id == a.id
    [t] = await queue.claim("h", ["noop"])
    [c] = await queue.enqueue([TaskSpec("noop", unique_key="episode-1")])  # running: still live
    assert c.id == a.id and not c.created
    assert await queue.complete(t)
    [d] = await queue.enqueue([TaskSpec("noop", unique_key="episode-1")])  # finished: new task
    assert d.created and d.id != a.id


async def test_concurrent_enqueue_of_one_unique_key_makes_one_task(db_url: str) -> None:
    conns = [await db.connect(db_url) for _ in range(8)]
    try:
        results = await asyncio.gather(
            *(Queue(c).enqueue([TaskSpec("noop", unique_key="same")]) for c in conns)
        )
    finally:
        for c in conns:
            await c.close()
    ids = {r[0].id for r in results}
    assert len(ids) == 1
    assert sum(r[0].created for r in results) == 1


async def test_retryable_failures_back_off_2_4_8_then_fail(
    queue: Queue, conn: db.AsyncConn
) -> None:
    [e] = await queue.enqueue([TaskSpec("fail")])
    expected = [2.0, 4.0, 8.0]
    for attempt, base in enumerate(expected, start=1):
        [t] = await queue.claim("h", ["fail"])
        assert t.attempts == attempt
        assert await queue.fail(t, Failure("Boom", f"boom {attempt}")) == "scheduled"
        row = await fetch_task(conn, e.id)
        delay = (row["run_at"] - row["updated_at"]).total_seconds()
        assert base <= delay <= base * 1.25 + 0.01, (attempt, delay)
        assert row["state"] == "scheduled" and row["error_message"] == f"boom {attempt}"
        await make_due(conn, e.id)
    [t] = await queue.claim("h", ["fail"])
    assert t.attempts == 4
    assert await queue.fail(t, Failure("Boom", "boom 4")) == "failed"
    row = await fetch_task(conn, e.id)
    assert row["state"] == "failed" and row["finished_at"] is not None
    assert row["error_type"] == "Boom" and row["error_message"] == "boom 4"


async def test_non_retryable_failure_fails_at_once_and_keeps_the_reason(
    queue: Queue, conn: db.AsyncConn
) -> None:
    [e] = await queue.enqueue([TaskSpec("fail")])
    [t] = await queue.claim("h", ["fail"])
    tb = "Traceback (most recent call last):\n" + "x" * 10_000
    state = await queue.fail(t, Failure("ValueError", "corrupt input", tb, retryable=False))
    assert state == "failed"
    row = await fetch_task(conn, e.id)
    assert row["attempts"] == 1 and row["error_message"] == "corrupt input"
    assert len(row["error_traceback"]) <= 4000 and row["error_traceback"].endswith("x")


async def test_expired_lease_goes_to_another_claimer_and_the_late_answer_is_refused(
    queue: Queue, conn: db.AsyncConn, caplog: pytest.LogCaptureFixture
) -> None:
    [e] = await queue.enqueue([TaskSpec("noop")])
    [first] = await queue.claim("dead-host", ["noop"], lease_s=0.3)
    assert await queue.claim("other", ["noop"]) == []  # lease still live

    async def taken() -> list[Any]:
        return await queue.claim("other", ["noop"])

    second = await wait_for(taken, timeout_s=5)
    [second_task] = second
    assert second_task.id == e.id and second_task.attempts == 2
    assert second_task.token != first.token

    # The first agent comes back from the dead: everything it says is refused.
    assert not (await queue.progress(first, 0.5)).held
    assert not await queue.complete(first, {"who": "first"})
    assert await queue.fail(first, Failure("X", "late")) is None
    assert not await queue.release(first)
    assert "refused" in caplog.text

    assert await queue.complete(second_task, {"who": "second"})
    row = await fetch_task(conn, e.id)
    assert row["state"] == "succeeded" and row["result"] == {"who": "second"}
    assert row["host"] == "other"


async def test_heartbeat_renewal_keeps_the_lease(queue: Queue) -> None:
    await queue.enqueue([TaskSpec("noop")])
    [t] = await queue.claim("h", ["noop"], lease_s=0.5)
    for _ in range(4):
        states = await queue.renew_leases([t.token], lease_s=0.5)
        assert states[t.token].held
        assert await queue.claim("thief", ["noop"]) == []
        await asyncio.sleep(0.25)
    assert await queue.complete(t)


async def test_expired_lease_out_of_attempts_is_swept_to_failed(
    queue: Queue, conn: db.AsyncConn
) -> None:
    [e] = await queue.enqueue([TaskSpec("noop", max_attempts=1)])
    await queue.claim("dies", ["noop"], lease_s=0.1)
    await asyncio.sleep(0.2)
    assert await queue.claim("other", ["noop"]) == []  # no attempts left: not re-run
    assert await queue.sweep_expired() == 1
    row = await fetch_task(conn, e.id)
    assert row["state"] == "failed" and row["error_type"] == "LeaseExpired"
    assert "dies" in row["error_message"]


async def test_release_hands_back_without_burning_an_attempt(
    queue: Queue, conn: db.AsyncConn
) -> None:
    [e] = await queue.enqueue([TaskSpec("noop")])
    [t] = await queue.claim("h", ["noop"])
    assert await queue.release(t)
    row = await fetch_task(conn, e.id)
    assert row["state"] == "queued" and row["attempts"] == 0 and row["host"] is None
    [again] = await queue.claim("h2", ["noop"])
    assert again.attempts == 1


async def test_cancel_queued_is_immediate_and_running_is_asked(
    queue: Queue, conn: db.AsyncConn
) -> None:
    queued, running, done = await queue.enqueue([TaskSpec("sleep")] * 3)
    await conn.execute("UPDATE tasks SET priority = 10 WHERE id IN (%s, %s)", (running.id, done.id))
    t_done, t_running = sorted(
        await queue.claim("h", ["sleep"], limit=2), key=lambda t: t.id != done.id
    )
    assert await queue.complete(t_done)

    rows = await queue.cancel([queued.id, running.id, done.id])
    by_id = {r["id"]: r["state"] for r in rows}
    assert by_id == {queued.id: "cancelled", running.id: "running"}
    assert (await fetch_task(conn, queued.id))["state"] == "cancelled"
    assert (await fetch_task(conn, done.id))["state"] == "succeeded"

    lease = await queue.progress(t_running, 0.5)
    assert lease.held and lease.cancel_requested
    assert (await queue.renew_leases([t_running.token]))[t_running.token].cancel_requested
    assert await queue.acknowledge_cancel(t_running)
    assert (await fetch_task(conn, running.id))["state"] == "cancelled"


async def test_failure_after_cancel_request_ends_cancelled(
    queue: Queue, conn: db.AsyncConn
) -> None:
    [e] = await queue.enqueue([TaskSpec("fail")])
    [t] = await queue.claim("h", ["fail"])
    await queue.cancel([e.id])
    assert await queue.fail(t, Failure("X", "aborted")) == "cancelled"
    assert (await fetch_task(conn, e.id))["state"] == "cancelled"


async def test_retry_moves_failed_tasks_back_with_fresh_attempts(
    queue: Queue, conn: db.AsyncConn
) -> None:
    a, b, ok = await queue.enqueue([TaskSpec("fail"), TaskSpec("fail"), TaskSpec("noop")])
    for t in await queue.claim("h", ["fail", "noop"], limit=3):
        if t.type == "fail":
            await queue.fail(t, Failure("X", "nope", retryable=False))
        else:
            await queue.complete(t)
    assert await queue.retry([a.id, ok.id]) == [a.id]  # a succeeded task is not retried
    row = await fetch_task(conn, a.id)
    assert row["state"] == "queued" and row["attempts"] == 0 and row["finished_at"] is None
    assert await queue.retry(task_type="fail") == [b.id]
    assert await queue.retry(task_type="fail") == []


async def test_progress_is_stored(queue: Queue, conn: db.AsyncConn) -> None:
    [e] = await queue.enqueue([TaskSpec("sleep")])
    [t] = await queue.claim("h", ["sleep"])
    assert (await queue.progress(t, 0.4, "chunk 2/5")).held
    row = await fetch_task(conn, e.id)
    assert row["progress"] == pytest.approx(0.4) and row["progress_stage"] == "chunk 2/5"


async def test_stats_match_a_full_count_across_rollups_and_retries(
    queue: Queue, conn: db.AsyncConn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("control.core.queue.ROLLUP_MARGIN_S", 0)
    await queue.enqueue([TaskSpec("noop")] * 30 + [TaskSpec("fail")] * 10 + [TaskSpec("sleep")] * 3)

    async def drain(n: int) -> None:
        for t in await queue.claim("h", ["noop", "fail"], limit=n):
            if t.type == "fail":
                await queue.fail(t, Failure("X", "no", retryable=False))
            else:
                await queue.complete(t)

    async def truth() -> dict[str, dict[str, int]]:
        cur = await conn.execute(
            "SELECT type, CASE WHEN state = 'scheduled' AND run_at <= now() THEN 'queued' "
            "ELSE state END AS state, count(*) AS n FROM tasks GROUP BY 1, 2"
        )
        out: dict[str, dict[str, int]] = {}
        for r in await cur.fetchall():
            out.setdefault(r["type"], {})[r["state"]] = r["n"]
        return out

    def nonzero(stats: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        return {t: {s: n for s, n in c.items() if n} for t, c in stats.items()}

    async def agree() -> None:
        """Read alone, and in one round trip from a watermark read before the rollups (a
        dashboard's): the same counts as a full count."""
        assert nonzero(await queue.stats()) == await truth()
        assert nonzero(await queue.stats(StatsMark(first.watermark))) == await truth()
        assert nonzero(await queue.stats(moving)) == await truth()

    first, moving = StatsMark(), StatsMark()
    await queue.stats(first)
    await queue.stats(moving)
    await drain(20)
    await asyncio.sleep(0.01)
    assert await queue.rollup()
    await drain(30)
    await agree()
    cur = await conn.execute("SELECT sum(count) AS n FROM task_stats")
    assert (await cur.fetchone())["n"] > 0  # some counts come from the rollup
    assert moving.watermark is not None and first.watermark is not None
    assert moving.watermark > first.watermark  # the mark moves with the rollups
    await queue.retry(task_type="fail")  # some of these were rolled up
    await agree()
    await asyncio.sleep(0.01)
    assert await queue.rollup()
    await agree()


async def test_one_notification_per_enqueue_transaction(db_url: str, queue: Queue) -> None:
    listener = await db.connect(db_url)
    try:
        await Queue(listener).listen()
        await queue.enqueue([TaskSpec("noop")] * 100 + [TaskSpec("sleep")] * 5)
        notes = [n async for n in listener.notifies(timeout=1.0)]
    finally:
        await listener.close()
    assert len(notes) == 1
    # `t XID N TYPES`: the transaction that made them, how many, which types (agent/wakeup.py)
    tag, xid, n, types = notes[0].payload.split(" ")
    assert (tag, n, types) == ("t", "105", "noop,sleep") and int(xid) > 0


async def test_a_listener_gets_each_notification_and_an_error_when_its_connection_goes(
    db_url: str, conn: db.AsyncConn
) -> None:
    """db.listen waits on the socket itself (psycopg's notifies() wakes ten times a second):
    what is sent as soon as it listens and what comes later arrive, in order, on its channels
    only; a listener whose backend is terminated raises OperationalError (agents reconnect)."""
    listener = await db.connect(db_url)
    ready = asyncio.Event()
    got: list[tuple[str, str]] = []

    async def send() -> None:
        await ready.wait()
        await conn.execute("NOTIFY a, 'one'")  # at once
        await conn.execute("NOTIFY b, 'two'")
        await asyncio.sleep(0.3)  # and after a while with nothing
        await conn.execute("NOTIFY a, 'three'")
        await conn.execute("NOTIFY c, 'not listened to'")
        await conn.execute("NOTIFY a, 'four'")

    sender = asyncio.create_task(send())
    try:
        with pytest.raises(psycopg.OperationalError):
            async with asyncio.timeout(10):
                async for note in db.listen(listener, ["a", "b"], listening=ready.set):
                    got.append((note.channel, note.payload))
                    if len(got) == 4:
                        await conn.execute(
                            "SELECT pg_terminate_backend(%s)", (listener.info.backend_pid,)
                        )
    finally:
        await sender
        await listener.close()
    assert got == [("a", "one"), ("b", "two"), ("a", "three"), ("a", "four")]


async def test_bad_specs_are_refused_before_anything_is_written(
    queue: Queue, conn: db.AsyncConn
) -> None:
    from control.core.errors import UsageError

    for bad in (TaskSpec("nope"), TaskSpec("noop", delay_s=-1), TaskSpec("noop", max_attempts=0)):
        with pytest.raises(UsageError):
            await queue.enqueue([TaskSpec("noop"), bad])
    cur = await conn.execute("SELECT count(*) AS n FROM tasks")
    assert (await cur.fetchone())["n"] == 0


def host_h_heartbeat() -> Any:
    """The heartbeat of an undeclared host `h` that runs noop."""
    from datetime import UTC, datetime

    from control.core import fleet

    return fleet.Heartbeat(
        name="h",
        address=None,
        agent_state="online",
        agent_version="x",
        code_hash="x",
        pid=1,
        started_at=datetime.now(UTC),
        enabled_tasks=["noop"],
        declared=False,
    )


async def test_a_heartbeat_commits_lazily_but_leaves_the_session_durable(
    conn: db.AsyncConn,
) -> None:
    from control.core import fleet

    hb = host_h_heartbeat()
    await fleet.register(conn, hb)
    assert not (await fleet.beat(conn, hb)).commands_waiting
    await fleet.send_command(conn, "h", "drain", {})
    assert (await fleet.beat(conn, hb)).commands_waiting
    await conn.execute("TRUNCATE host_beats")  # what a server crash does to an unlogged table
    assert (await fleet.beat(conn, hb)).commands_waiting
    cur = await conn.execute("SELECT count(*) AS n FROM host_beats")
    assert (await cur.fetchone())["n"] == 1
    cur = await conn.execute("SHOW synchronous_commit")
    assert (await cur.fetchone())["synchronous_commit"] == "on"  # completions stay durable


async def test_a_heartbeat_answers_what_the_agent_used_to_ask_on_its_own(
    queue: Queue, conn: db.AsyncConn
) -> None:
    """One round trip renews the leases that are due and tells the agent whether a schedule
    is due, whether expired leases wait for a sweep or for a claim, and the storage id."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from control.core import fleet, schedules

    hb = host_h_heartbeat()
    await fleet.register(conn, hb)
    await queue.sweep_expired()  # the fleet's look for dead sessions' leases: taken just now
    quiet = await fleet.beat(conn, hb)
    assert (quiet.schedules_due, quiet.sweep_due, quiet.expired_claimable) == (False,) * 3
    assert quiet.storage_id is None

    [mine] = await queue.enqueue([TaskSpec("noop")])
    [held] = await queue.claim("h", ["noop"], lease_s=0.5)
    await queue.enqueue([TaskSpec("noop", max_attempts=1), TaskSpec("noop")])
    [dead, alive] = await queue.claim("dies", ["noop"], limit=2, lease_s=0.1)
    hourly = schedules.Schedule("hourly", "noop", {}, every_s=3600)
    await schedules.put(conn, hourly, now=datetime.now(UTC) - timedelta(hours=2))
    storage = uuid.uuid4()
    await conn.execute("INSERT INTO fleet_storage (storage_id) VALUES (%s)", [storage])
    await asyncio.sleep(0.2)  # `dies` went quiet: its two leases run out, ours is renewed
    lost = uuid.uuid4()
    reply = await fleet.beat(conn, hb, renew=[held.token, lost], lease_s=30)
    assert reply.schedules_due and reply.sweep_due and reply.expired_claimable
    assert reply.storage_id == str(storage)
    assert reply.leases[held.token].held and not reply.leases[lost].held
    row = await fetch_task(conn, mine.id)
    assert row["lease_expires_at"] > datetime.now(UTC) + timedelta(seconds=25)

    other_types = await fleet.beat(conn, replace(hb, enabled_tasks=["translate"]))
    assert not other_types.expired_claimable  # not a type it runs: no reason to claim
    assert await queue.sweep_expired() == 1
    [again] = await queue.claim("h", ["noop"])
    assert again.id == alive.id and dead.id != alive.id
    await schedules.tick(conn)
    after = await fleet.beat(conn, hb)
    assert (after.schedules_due, after.sweep_due, after.expired_claimable) == (False,) * 3


async def test_a_lease_whose_session_ended_runs_out_at_the_next_sweep(
    db_url: str, queue: Queue, conn: db.AsyncConn
) -> None:
    """An agent's leases live as long as its database session (the advisory lock of its session
    key): once the session is gone (the agent killed, crashed, its machine off the network),
    the next sweep lets them run out, however long their time, and the next claim takes them.
    A living session's lease, and one claimed without a session key, keep their time."""
    from control.core import fleet

    await queue.enqueue([TaskSpec("noop")] * 3)
    dead = await db.connect(db_url, agent=True)
    live = await db.connect(db_url, agent=True)
    try:
        dead_key, live_key = await db.hold_session_key(dead), await db.hold_session_key(live)
        assert dead_key != live_key
        [gone] = await Queue(dead, session=dead_key).claim("dead", ["noop"], lease_s=300)
        [kept] = await Queue(live, session=live_key).claim("live", ["noop"], lease_s=300)
        [keyless] = await queue.claim("keyless", ["noop"], lease_s=300)
        hb = replace(host_h_heartbeat(), session_key=live_key)
        await fleet.register(live, hb)
        assert await queue.sweep_expired() == 0  # the fleet's turn to look, taken: all alive
        assert not (await fleet.beat(live, hb)).sweep_due  # the next look is a turn away

        dead_pid = dead.info.backend_pid
        await dead.close()  # what kill -9 does to the agent's socket

        async def ended() -> bool:  # its server process gone: its session has ended
            row = await db.row(
                live,
                "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = %(p)s",
                {"p": dead_pid},
            )
            return bool(row and row["n"] == 0)

        await wait_for(ended, 5)
        assert await queue.sweep_expired() == 0  # not a turn yet: nobody looks

        async def lapsed() -> bool:  # the server ends the session as the socket closes
            return await queue.sweep_expired(turn_s=0, grace_s=0) == 1

        await wait_for(lapsed, 5)
        [again] = await queue.claim("heir", ["noop"], lease_s=300)
        assert (again.id, again.attempts) == (gone.id, 2)
        for held in (kept, keyless):
            row = await fetch_task(conn, held.id)
            assert row["state"] == "running" and row["attempts"] == 1
        assert await queue.sweep_expired(turn_s=0, grace_s=0) == 0
        assert await queue.claim("heir", ["noop"], lease_s=300) == []
    finally:
        await dead.close()
        await live.close()


async def test_a_lease_outlives_its_session_by_the_grace_and_a_returning_agent_keeps_it(
    db_url: str, queue: Queue, conn: db.AsyncConn
) -> None:
    """A session that ended is evidence, not proof, that its agent is gone (a partition ends it
    at the server in ~20 s). Its lease is marked orphaned and kept for the grace: an agent that
    reconnects meanwhile puts its new key on the lease by token and keeps the task (its finished
    work is accepted); one that does not come back loses it when the grace is over."""
    await queue.enqueue([TaskSpec("noop")] * 2)
    first = await db.connect(db_url, agent=True)
    other = await db.connect(db_url, agent=True)
    try:
        keys = await db.hold_session_key(first), await db.hold_session_key(other)
        [back] = await Queue(first, session=keys[0]).claim("back", ["noop"], lease_s=300)
        [gone] = await Queue(other, session=keys[1]).claim("gone", ["noop"], lease_s=300)
        await first.close()  # the partition: both sessions end at the server
        await other.close()

        async def orphaned() -> bool:
            assert (await queue.sweep(turn_s=0, grace_s=3)).lapsed == 0
            cur = await conn.execute(
                "SELECT count(*) AS n FROM tasks WHERE lease_orphaned_at IS NOT NULL"
            )
            return (await cur.fetchone())["n"] == 2

        await wait_for(orphaned, 5)
        assert (await queue.sweep(turn_s=0, grace_s=3)).lapsed == 0  # inside the grace
        assert await queue.claim("heir", ["noop"], lease_s=300) == []

        # `back` reconnects within the grace: a new session, its lease re-keyed by token
        again = await db.connect(db_url, agent=True)
        try:
            q = Queue(again, session=await db.hold_session_key(again))
            assert (await q.renew_leases([back.token], lease_s=300))[back.token].held
            await asyncio.sleep(3.2)  # the grace passes
            assert (await queue.sweep(turn_s=0, grace_s=3)).lapsed == 1  # `gone`'s only
            [taken] = await queue.claim("heir", ["noop"], lease_s=300)
            assert taken.id == gone.id
            assert await q.complete(back, {"ok": True})  # its work is accepted, once
        finally:
            await again.close()
        row = await fetch_task(conn, back.id)
        assert (row["state"], row["host"], row["attempts"]) == ("succeeded", "back", 1)
    finally:
        await first.close()
        await other.close()


async def test_a_claim_in_answer_says_when_it_left_nothing_of_its_types(
    db_url: str, queue: Queue
) -> None:
    """`tell`: the claim's own statement announces `c SNAPSHOT TYPES` when nothing claimable
    of its types is left (so the agents ranked after it stand down), also when it claimed
    nothing; and says nothing while some are left."""
    listener = await db.connect(db_url)
    try:
        await Queue(listener).listen()
        await queue.enqueue([TaskSpec("noop")] * 2)
        await anext(listener.notifies(timeout=1.0))  # the announcement
        assert len(await queue.claim("h1", ["noop"], limit=1, tell=True)) == 1
        assert [n async for n in listener.notifies(timeout=0.5)] == []  # one is left
        assert len(await queue.claim("h1", ["noop"], limit=5, tell=True)) == 1
        assert await queue.claim("h1", ["noop", "sleep"], limit=5, tell=True) == []
        assert await queue.claim("h1", ["noop"], limit=5) == []  # not in answer: silent
        notes = [n.payload async for n in listener.notifies(timeout=0.5)]
    finally:
        await listener.close()
    assert [p.split(" ")[0] for p in notes] == ["c", "c"]
    assert [p.split(" ")[2] for p in notes] == ["noop", "noop,sleep"]
    xmin, xmax, _ = notes[0].split(" ")[1].split(":")
    assert int(xmin) <= int(xmax)
