"""An agent role touches only what it holds (migration 0015).

Each attack is one the probe of the last round carried out as `agent_<host>`: become the group
role, then cancel or rewrite another host's task, insert tasks of made-up types, read and
repoint a source, read a schedule's payload, write an item's outputs. Each is refused here,
and what an agent role can reach at all is a list this test keeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from control.core import db
from control.core.queue import Queue, TaskSpec

# What an agent role may do, table by table: `*` the whole table, else the columns. Anything
# not here it cannot touch at all. A change to this list is a change to what a worker that was
# broken into can do: review it as such.
AGENT_REACH: dict[str, dict[str, str]] = {
    "agent_commands": {"SELECT": "*", "UPDATE": "acked_at,done_at,outcome"},
    "agent_logs": {"DELETE": "*", "INSERT": "*", "SELECT": "*"},
    "agent_logs_id_seq": {"USAGE": "*"},
    "contentctl_schema": {"SELECT": "*"},
    "fleet_storage": {"SELECT": "*"},
    "fleet_sweep": {"SELECT": "swept_at"},
    "host_beats": {"INSERT": "*", "SELECT": "*", "UPDATE": "*"},
    "host_daily_counts": {"INSERT": "*", "SELECT": "*", "UPDATE": "*"},
    "hosts": {
        "INSERT": "address,agent_version,code_hash,declared,enabled_tasks,name,pid,started_at",
        "SELECT": "*",
        "UPDATE": "address,agent_version,code_hash,declared,enabled_tasks,pid,started_at",
    },
    "media_items": {
        "INSERT": "channel,duration_s,feed_url,kind,metadata,options,source,source_id,title,"
        "unique_key,upload_date",
        "SELECT": "*",
        "UPDATE": "channel,duration_s,metadata,outputs,title,updated_at,upload_date",
    },
    "media_items_id_seq": {"USAGE": "*"},
    "schedules": {"SELECT": "name,next_run_at,paused"},
    "sources": {
        "SELECT": "*",
        "UPDATE": "etag,items_found,last_error,last_modified,last_polled_at,options,polls",
    },
    "task_types": {"SELECT": "*"},
    "tasks": {
        "INSERT": "max_attempts,media_id,payload,priority,run_at,state,timeout_s,type,unique_key",
        "SELECT": "*",
        "UPDATE": "attempt_token,attempts,error_message,error_traceback,error_type,finished_at,"
        "host,lease_expires_at,lease_orphaned_at,lease_session,progress,progress_at,"
        "progress_stage,result,run_at,started_at,state,updated_at",
    },
    "tasks_id_seq": {"USAGE": "*"},
}
AGENT_FUNCTIONS = [
    "contentctl_agent_host()",
    "contentctl_holds_media(bigint)",
    "contentctl_holds_source(bigint)",
    "contentctl_lapse(double precision,double precision)",
    "contentctl_live_sessions()",
    "contentctl_peers()",
    "contentctl_poll_validators(bigint,text,text)",
    "contentctl_schedule_fire(text,timestamp with time zone,timestamp with time zone,integer,"
    "double precision)",
    "contentctl_schedules_due(timestamp with time zone)",
    "contentctl_shown_state(text,timestamp with time zone)",
    "contentctl_sweep_expired()",
]

REACH_SQL = """
WITH rel AS (
    SELECT c.oid, c.relname, c.relkind FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = 'public'
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
), privs(priv) AS (
    VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('REFERENCES'),
           ('TRIGGER'), ('USAGE')
)
SELECT rel.relname AS name, p.priv,
    CASE
        WHEN rel.relkind = 'S' THEN
            CASE WHEN p.priv IN ('USAGE', 'SELECT', 'UPDATE')
                  AND has_sequence_privilege(%(role)s, rel.oid, p.priv) THEN '*' END
        WHEN p.priv <> 'USAGE' AND has_table_privilege(%(role)s, rel.oid, p.priv) THEN '*'
        WHEN p.priv IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES') THEN (
            SELECT string_agg(a.attname, ',' ORDER BY a.attname) FROM pg_attribute AS a
            WHERE a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
              AND has_column_privilege(%(role)s, rel.oid, a.attnum, p.priv))
    END AS cols
FROM rel CROSS JOIN privs AS p
"""
FUNCTIONS_SQL = """
SELECT p.oid::regprocedure::text AS fn FROM pg_proc AS p
JOIN pg_namespace AS n ON n.oid = p.pronamespace AND n.nspname = 'public'
WHERE has_function_privilege(%(role)s, p.oid, 'EXECUTE') ORDER BY 1
"""


async def test_what_an_agent_role_can_reach_is_on_the_list(
    conn: db.AsyncConn, agent_role_url: Callable[[str], str]
) -> None:
    agent_role_url("h1")
    cur = await conn.execute(REACH_SQL, {"role": "agent_h1"})
    reach: dict[str, dict[str, str]] = {}
    for row in await cur.fetchall():
        if row["cols"]:
            reach.setdefault(row["name"], {})[row["priv"]] = row["cols"]
    assert reach == AGENT_REACH
    cur = await conn.execute(FUNCTIONS_SQL, {"role": "agent_h1"})
    assert [r["fn"] for r in await cur.fetchall()] == AGENT_FUNCTIONS


@pytest.fixture
async def fleet_of_two(
    conn: db.AsyncConn, agent_role_url: Callable[[str], str]
) -> AsyncIterator[dict[str, Any]]:
    """h2 holds a running task of a media item and has logs, a command and a host row; a
    queued task, a source with a cookies file and a schedule with an API key exist. `h1` is a
    raw connection as host h1's own role."""
    queue = Queue(conn)
    cur = await conn.execute(
        "INSERT INTO media_items (kind, source, title) VALUES ('file', '/x.ogg', 'x') RETURNING id"
    )
    media_id = (await cur.fetchone())["id"]
    [held] = await queue.enqueue([TaskSpec("noop", media_id=media_id)])
    h2 = await db.connect(agent_role_url("h2"))
    [running] = await Queue(h2).claim("h2", ["noop"], limit=1)
    assert running.id == held.id
    await conn.execute(
        "INSERT INTO agent_logs (host, ts, level, logger, message) "
        "VALUES ('h2', now(), 'INFO', 'x', 'h2 secret line')"
    )
    await conn.execute("INSERT INTO hosts (name, enabled_tasks) VALUES ('h2', '{noop,stitch}')")
    [queued] = await queue.enqueue([TaskSpec("noop", payload={"n": 1})])
    await conn.execute(
        "INSERT INTO sources (name, url, kind, options) VALUES ('talk', 'https://feeds.test/x',"
        " 'podcast', %s)",
        (Jsonb({"ytdlp": {"cookies": "/home/op/cookies.txt"}}),),
    )
    await conn.execute(
        "INSERT INTO schedules (name, task_type, payload, every_s, next_run_at) "
        "VALUES ('nightly', 'noop', %s, 60, now() + interval '1 hour')",
        (Jsonb({"api_key": "sk-planted-secret"}),),
    )
    h1 = await psycopg.AsyncConnection.connect(
        agent_role_url("h1"), autocommit=True, row_factory=dict_row
    )
    try:
        yield {"h1": h1, "held": held.id, "queued": queued.id, "media_id": media_id}
    finally:
        await h1.close()
        await h2.close()


async def _refused(h1: psycopg.AsyncConnection[Any], statement: str, *args: Any) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await h1.execute(statement, args or None)


async def _touches(h1: psycopg.AsyncConnection[Any], statement: str, *args: Any) -> int:
    cur = await h1.execute(statement, args or None)
    return cur.rowcount


async def test_an_agent_role_cannot_become_the_group(fleet_of_two: dict[str, Any]) -> None:
    h1 = fleet_of_two["h1"]
    await _refused(h1, "SET ROLE contentctl_agent")
    # and its identity is its login role whatever it sets
    cur = await h1.execute("SELECT contentctl_agent_host() AS host")
    assert (await cur.fetchone())["host"] == "h1"


async def test_an_agent_touches_only_what_it_holds(
    fleet_of_two: dict[str, Any], conn: db.AsyncConn
) -> None:
    h1, held, queued = fleet_of_two["h1"], fleet_of_two["held"], fleet_of_two["queued"]
    # another host's rows: invisible, unwritable
    cur = await h1.execute("SELECT count(*) AS n FROM agent_logs WHERE host = 'h2'")
    assert (await cur.fetchone())["n"] == 0
    assert await _touches(h1, "UPDATE hosts SET enabled_tasks = '{}' WHERE name = 'h2'") == 0
    # another host's running task: no cancel, no rewrite, no completion
    await _refused(h1, "UPDATE tasks SET cancel_requested_at = now() WHERE id = %s", held)
    assert await _touches(h1, "UPDATE tasks SET state = 'failed' WHERE id = %s", held) == 0
    assert (
        await _touches(h1, "UPDATE tasks SET state = 'succeeded', host = 'h1' WHERE id = %s", held)
        == 0
    )
    # a queued task's input, type or priority: never
    await _refused(h1, "UPDATE tasks SET payload = '{\"evil\": 1}' WHERE id = %s", queued)
    await _refused(h1, "UPDATE tasks SET type = 'fail' WHERE id = %s", queued)
    await _refused(h1, "UPDATE tasks SET priority = 1000000 WHERE id = %s", queued)
    # tasks of made-up types, or not for an item it holds
    await _refused(h1, "INSERT INTO tasks (type) SELECT 'x' || g FROM generate_series(1, 500) g")
    await _refused(h1, "INSERT INTO tasks (type) VALUES ('noop')")
    await _refused(
        h1, "INSERT INTO tasks (type, media_id) VALUES ('stitch', %s)", fleet_of_two["media_id"]
    )
    # sources: no cookies path to read, no URL to repoint
    cur = await h1.execute("SELECT options FROM sources")
    assert await cur.fetchall() == []
    await _refused(h1, "UPDATE sources SET url = 'http://169.254.169.254/'")
    # schedules: the payload (an API key) is not readable, nor writable
    await _refused(h1, "SELECT payload FROM schedules")
    await _refused(h1, "UPDATE schedules SET payload = '{}'")
    cur = await h1.execute("SELECT name, task_type FROM contentctl_schedules_due(now() + '2h')")
    assert await cur.fetchall() == [{"name": "nightly", "task_type": "noop"}]
    # an item it holds no task of: outputs not writable
    assert (
        await _touches(
            h1,
            'UPDATE media_items SET outputs = \'{"txt": "/etc/passwd"}\' WHERE id = %s',
            fleet_of_two["media_id"],
        )
        == 0
    )
    # the rest of the schema: nothing
    await _refused(h1, "SELECT * FROM audit_log")
    await _refused(h1, "UPDATE fleet_sweep SET swept_at = now()")
    await _refused(h1, "DELETE FROM tasks")

    # nothing of h2's or the operator's changed
    cur = await conn.execute(
        "SELECT id, state, host, payload, cancel_requested_at FROM tasks ORDER BY id"
    )
    rows = await cur.fetchall()
    assert [(r["state"], r["host"], r["cancel_requested_at"]) for r in rows] == [
        ("running", "h2", None),
        ("queued", None, None),
    ]
    assert rows[1]["payload"] == {"n": 1}
    cur = await conn.execute("SELECT count(*) AS n FROM tasks")
    assert (await cur.fetchone())["n"] == 2


async def test_an_agent_works_what_it_claims(
    fleet_of_two: dict[str, Any], agent_role_url: Callable[[str], str], conn: db.AsyncConn
) -> None:
    """The same role does its work: claims the queued task, reports progress, completes it."""
    agent = await db.connect(agent_role_url("h1"))
    try:
        q = Queue(agent)
        [mine] = await q.claim("h1", ["noop"], limit=1)
        assert mine.id == fleet_of_two["queued"]
        assert (await q.progress(mine, 0.5, "half")).held
        assert await q.complete(mine, {"ok": True})
        # the sweep and the lapse run through the schema's functions
        assert await q.sweep_expired(turn_s=0) == 0
    finally:
        await agent.close()
    cur = await conn.execute("SELECT state, result FROM tasks WHERE id = %s", (mine.id,))
    assert await cur.fetchone() == {"state": "succeeded", "result": {"ok": True}}
