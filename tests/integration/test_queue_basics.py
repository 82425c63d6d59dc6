from __future__ import annotations

from datetime import date
from typing import Any, cast

from control.core import fleet
from control.core.queue import Queue, TaskSpec
from control.core.sql import q


async def test_enqueue_claim_complete(queue: Queue) -> None:
    [e] = await queue.enqueue([TaskSpec("noop")])
    [t] = await queue.claim("h1", ["noop"])
    assert t.id == e.id
    assert await queue.complete(t, {"ok": True})
    stats = await queue.stats()
    assert stats["noop"]["succeeded"] == 1


async def test_a_capped_type_takes_its_cap_and_the_other_types_fill_the_claim(
    queue: Queue,
) -> None:
    await queue.enqueue([TaskSpec("download_youtube", priority=10) for _ in range(5)])
    await queue.enqueue([TaskSpec("noop") for _ in range(20)])
    got = await queue.claim(
        "h1", ["download_youtube", "noop"], limit=10, caps={"download_youtube": 1}
    )
    types = [t.type for t in got]
    assert types.count("download_youtube") == 1
    assert types.count("noop") == 9
    assert types[0] == "download_youtube"  # priority order kept across types
    # a cap at or above the limit is no cap
    again = await queue.claim("h2", ["download_youtube"], limit=3, caps={"download_youtube": 5})
    assert len(again) == 3


async def test_a_claim_counts_its_tasks_into_the_hosts_daily_counters(queue: Queue) -> None:
    """The daily counters (worker limits per day) are written by the claim itself."""
    await queue.enqueue([TaskSpec("noop") for _ in range(3)] + [TaskSpec("sleep")])
    day = date(2026, 11, 27)
    assert len(await queue.claim("h1", ["noop", "sleep"], limit=2, count_day=day)) == 2
    assert len(await queue.claim("h1", ["noop", "sleep"], limit=5, count_day=day)) == 2
    assert await fleet.daily_counts(queue.conn, "h1", day) == {"noop": 3, "sleep": 1}
    assert await fleet.daily_counts(queue.conn, "h1", date(2026, 11, 28)) == {}


async def test_a_bulk_enqueue_leaves_the_planner_fresh_statistics(queue: Queue) -> None:
    """Without them a claim read and sorted the whole backlog (2.3x its server time)."""
    await queue.enqueue([TaskSpec("noop") for _ in range(1500)])
    cur = await queue.conn.execute("SELECT reltuples FROM pg_class WHERE relname = 'tasks'")
    row = await cur.fetchone()
    assert row is not None and row["reltuples"] >= 1500
    plan = await queue.conn.execute(
        "EXPLAIN SELECT id FROM tasks WHERE state IN ('queued', 'scheduled') "
        "AND run_at <= now() AND type = ANY(%s) ORDER BY priority DESC, run_at, id LIMIT 5",
        (["noop"],),
    )
    text = "\n".join(str(next(iter(r.values()))) for r in await plan.fetchall())
    assert "Index Scan using tasks_claimable_idx" in text, text


def _rows_filtered_out(node: dict[str, Any]) -> int:
    """Index or table entries a plan node read and threw away, its children's included."""
    own = int(node.get("Rows Removed by Filter", 0)) * int(node.get("Actual Loops", 1))
    return own + sum(_rows_filtered_out(child) for child in node.get("Plans", []))


async def test_a_capped_claim_does_not_walk_the_other_types_backlog(queue: Queue) -> None:
    """A capped type with no pending work made every claim read the whole pending backlog of
    the other types to find none (9,900 entries for 10,000 tasks, 8x the claim's time)."""
    await queue.enqueue([TaskSpec("noop") for _ in range(1500)])
    params = {
        "host": "h1",
        "types": ["download_youtube", "noop"],
        "limit": 5,
        "lease_s": 30.0,
        "day": None,
        "session": None,
        "capped": ["download_youtube"],
        "caps": [1],
        "tell": False,
    }
    async with queue.conn.transaction(force_rollback=True):
        cur = await queue.conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + q("claim_capped"), params
        )
        row = await cur.fetchone()
    assert row is not None
    [plan] = cast(list[dict[str, Any]], next(iter(row.values())))
    assert _rows_filtered_out(plan["Plan"]) < 50, plan


async def test_the_server_plans_a_claim_once_and_keeps_the_plan(queue: Queue) -> None:
    """Planning was most of a claim's server time: as the agent runs them (prepared), the
    server must settle on a kept plan for both claims, with caps and without."""
    await queue.enqueue([TaskSpec("noop") for _ in range(60)])
    queue.conn.prepare_threshold = 0
    for caps in ({}, {"download_youtube": 1}):
        for _ in range(10):
            await queue.claim("h1", ["download_youtube", "noop"], limit=3, caps=caps)
    cur = await queue.conn.execute(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
        "WHERE statement LIKE '%%UPDATE tasks AS t%%SET state = ''running''%%'"
    )
    plans = await cur.fetchall()
    assert len(plans) == 2, plans
    assert all(int(str(p["generic_plans"])) >= 5 for p in plans), plans


async def test_a_claim_s_types_written_into_its_text_cannot_break_out(queue: Queue) -> None:
    """The claim writes its types and caps into the statement as literals: quotes, percent
    signs, braces and commas in a type name stay a name (psycopg quotes them)."""
    await queue.enqueue([TaskSpec("noop")])
    hostile = ["x'); DELETE FROM tasks; --", "50%s %(host)s", "{a,b}", 'q"uote']
    assert await queue.claim("h1", hostile, limit=3, caps={hostile[0]: 1}) == []
    assert await queue.claim("h1", hostile, limit=3) == []
    [task] = await queue.claim("h1", [*hostile, "noop"], limit=3, caps={hostile[1]: 1})
    assert task.type == "noop"
