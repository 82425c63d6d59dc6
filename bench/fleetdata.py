"""Bench data: a big, realistic fleet in one go (for bench/queue.py and bench/tui.py)."""

from __future__ import annotations

from control.core import db

FILL_SQL = """
INSERT INTO tasks (type, payload, priority, state, run_at, attempts, host, created_at,
                   started_at, finished_at, updated_at, result, progress)
SELECT (ARRAY['download_youtube', 'extract_audio', 'transcribe', 'stitch', 'translate',
               'noop'])[1 + i % 6],
       '{}'::jsonb, 0,
       CASE WHEN i %% 100 = 0 THEN (ARRAY['queued','scheduled','running'])[1 + (i / 100) %% 3]
            WHEN i %% 67 = 0 THEN 'failed' WHEN i %% 200 = 1 THEN 'cancelled'
            ELSE 'succeeded' END,
       now() - make_interval(secs => (i * %(step)s) %% 2592000), 1,
       'host-' || (i %% 500),
       now() - make_interval(secs => (i * %(step)s) %% 2592000 + 60),
       now() - make_interval(secs => (i * %(step)s) %% 2592000 + 30),
       CASE WHEN i %% 100 = 0 THEN NULL
            ELSE now() - make_interval(secs => (i * %(step)s) %% 2592000) END,
       now(), '{}'::jsonb, 1.0
FROM generate_series(1, %(n)s) AS i
"""


async def fill_fleet(conn: db.AsyncConn, n: int, hosts: int, step_s: int = 1) -> None:
    """N tasks (99% finished, one every `step_s` seconds back to 30 days ago, then again, on
    `hosts` hosts) and `hosts` heartbeating hosts."""
    sql = FILL_SQL.replace("%%", "%").replace("%(n)s", str(n)).replace("%(step)s", str(step_s))
    await conn.execute(sql.encode())
    await conn.execute(
        "UPDATE tasks SET lease_expires_at = now() + interval '1 hour',"
        " attempt_token = gen_random_uuid()"
        " WHERE state = 'running'"
    )
    await conn.execute(
        "INSERT INTO hosts (name, address, enabled_tasks) "
        "SELECT 'host-' || i, '10.0.' || (i / 250) || '.' || (i %% 250), ARRAY['transcribe'] "
        "FROM generate_series(0, %s) AS i",
        (hosts - 1,),
    )
    await conn.execute(
        "INSERT INTO host_beats (name, agent_state, heartbeat) "
        "SELECT 'host-' || i, 'online', "
        "jsonb_build_object('load', jsonb_build_object('cpu_percent', 12.5, 'mem_percent', 40.0,"
        " 'load_avg', jsonb_build_array(0.5, 0.4, 0.3)), 'idle_reason', NULL) "
        "FROM generate_series(0, %s) AS i",
        (hosts - 1,),
    )
    await conn.execute("VACUUM ANALYZE tasks")
    await conn.execute("VACUUM ANALYZE hosts")
