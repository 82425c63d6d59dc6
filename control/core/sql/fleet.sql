-- The fleet: agents' registration and heartbeats, commands to agents, daily counters, logs.
-- One named block each (`-- name: NAME`), loaded once by control/core/sql/__init__.py.
-- Parameters are psycopg's named placeholders; nothing here is built by string formatting.

-- name: register
-- An agent says who it is when it starts (the lasting part of a host; liveness is in host_beats).
INSERT INTO hosts (name, address, agent_version, code_hash, pid, started_at, enabled_tasks,
                   declared)
VALUES (%(name)s, %(address)s, %(agent_version)s, %(code_hash)s, %(pid)s, %(started_at)s,
        %(enabled_tasks)s, %(declared)s)
ON CONFLICT (name) DO UPDATE SET
    address = excluded.address, agent_version = excluded.agent_version,
    code_hash = excluded.code_hash, pid = excluded.pid, started_at = excluded.started_at,
    enabled_tasks = excluded.enabled_tasks, declared = excluded.declared;

-- name: heartbeat
INSERT INTO host_beats (name, agent_state, last_heartbeat_at, heartbeat, session_key)
VALUES (%(name)s, %(agent_state)s, now(), %(heartbeat)s, %(session_key)s)
ON CONFLICT (name) DO UPDATE SET
    agent_state = excluded.agent_state, last_heartbeat_at = now(),
    heartbeat = excluded.heartbeat, session_key = excluded.session_key;

-- name: peers_changed
-- An agent joined, left, or changed state or types: the others ask who is live at their next
-- beat (agent/wakeup.py ranks among them), instead of once a minute.
SELECT pg_notify('contentctl_tasks', 'p');

-- name: pass_on
-- An agent ranked first for an announcement that cannot claim now (at capacity, draining)
-- says so at once: the next rank claims without waiting its step (agent/wakeup.py).
SELECT pg_notify('contentctl_tasks', 'x ' || %(xid)s::bigint || ' ' || %(host)s::text);

-- name: beat
-- An agent's heartbeat: one plain UPDATE of its unlogged row (no WAL). The commit does not wait
-- for the disk (synchronous_commit off for this statement's own transaction): a heartbeat lost
-- in a crash is replaced at the next one. No row (the table was emptied by a crash): the agent
-- writes it again with `heartbeat` and beats once more.
-- It also answers what the agent would otherwise ask on round trips of its own: whether
-- commands wait for it, whether a schedule is due, whether expired leases must be finished (the
-- sweep) or may be claimed by it, and the fleet's storage id (`storage init`). Each is a probe
-- of a small index or table (agent_commands by host, the due schedules, the running tasks by
-- lease expiry, the one-row fleet_storage). On this kind of machine a round trip to an idle
-- backend costs the server ~0.5 ms whatever it carries: fewer round trips, not smaller
-- statements, is what made 200 agents' beats cheaper. The session key is the advisory lock the
-- agent's connection holds (migration 0014): while it is held the agent is alive, whatever the
-- age of its last beat. `sweep_due` also says when the fleet's turn to look for leases of ended
-- sessions (dead agents) is free: one look every few seconds fleet-wide, not one per beat.
UPDATE host_beats
SET agent_state = %(agent_state)s, last_heartbeat_at = now(), heartbeat = %(heartbeat)s,
    session_key = %(session_key)s
WHERE name = %(name)s AND set_config('synchronous_commit', 'off', true) IS NOT NULL
RETURNING
    EXISTS (SELECT 1 FROM agent_commands
            WHERE host = %(name)s AND acked_at IS NULL) AS commands_waiting,
    EXISTS (SELECT 1 FROM schedules
            WHERE NOT paused AND next_run_at <= now()) AS schedules_due,
    EXISTS (SELECT 1 FROM tasks
            WHERE state = 'running' AND lease_expires_at < now()
              AND (cancel_requested_at IS NOT NULL OR attempts >= max_attempts))
    OR (SELECT swept_at < now() - make_interval(secs => %(sweep_turn_s)s) FROM fleet_sweep)
    AS sweep_due,
    EXISTS (SELECT 1 FROM tasks
            WHERE state = 'running' AND lease_expires_at < now()
              AND cancel_requested_at IS NULL AND attempts < max_attempts
              AND type = ANY(%(enabled_tasks)s)) AS expired_claimable,
    (SELECT storage_id::text FROM fleet_storage) AS storage_id,
    -- the live peers and their types (agent/wakeup.py), when the agent asks: once a minute
    CASE WHEN %(want_peers)s::boolean THEN contentctl_peers() END AS peers;

-- name: hosts_snapshot
SELECT h.name, h.address, b.agent_state, h.agent_version, h.code_hash, h.pid, h.started_at,
       h.enabled_tasks, h.declared, h.drain_requested, coalesce(b.heartbeat, '{}') AS heartbeat,
       b.last_heartbeat_at,
       extract(epoch FROM now() - b.last_heartbeat_at)::float8 AS heartbeat_age_s,
       CASE WHEN b.session_key IS NOT NULL
            THEN b.session_key IN (SELECT contentctl_live_sessions()) END AS session_alive
FROM hosts AS h
LEFT JOIN host_beats AS b USING (name)
ORDER BY h.name;

-- name: hosts_beaten_since
-- The dashboard's incremental read: the hosts whose beat was written at or after `since`,
-- less those it already has (`seen`: a JSON object, host -> the beat it read inside that
-- window in microseconds since the epoch; one parameter instead of two arrays, whose dumping
-- was half of the read's cost in the dashboard).
SELECT h.name, h.address, b.agent_state, h.agent_version, h.code_hash, h.pid, h.started_at,
       h.enabled_tasks, h.declared, h.drain_requested, coalesce(b.heartbeat, '{}') AS heartbeat,
       b.last_heartbeat_at,
       extract(epoch FROM now() - b.last_heartbeat_at)::float8 AS heartbeat_age_s,
       CASE WHEN b.session_key IS NOT NULL
            THEN b.session_key IN (SELECT contentctl_live_sessions()) END AS session_alive
FROM hosts AS h
JOIN host_beats AS b USING (name)
WHERE b.last_heartbeat_at >= %(since)s
  AND (%(seen)s::jsonb ->> b.name)
      IS DISTINCT FROM ((extract(epoch FROM b.last_heartbeat_at) * 1000000)::bigint)::text
ORDER BY h.name;

-- name: sessions_gone
-- The hosts whose agent's database session has ended (its advisory lock is gone): the dashboard
-- asks between its full reads, since an ending session writes nothing it could see.
SELECT coalesce(array_agg(name ORDER BY name), '{}') AS names FROM host_beats
WHERE session_key IS NOT NULL AND session_key NOT IN (SELECT contentctl_live_sessions());

-- name: running_tasks
SELECT id, type, host, progress, progress_stage FROM tasks WHERE state = 'running' ORDER BY id;

-- name: running_tasks_of
SELECT id, type, host, progress, progress_stage FROM tasks
WHERE state = 'running' AND host = ANY(%(hosts)s)
ORDER BY id;

-- name: server_now
SELECT now() AS now;

-- name: count_daily
SELECT type, count FROM host_daily_counts WHERE host = %(host)s AND day = %(day)s;

-- name: done_since
SELECT count(*) AS n FROM tasks
WHERE host = %(host)s AND state = 'succeeded' AND finished_at >= %(since)s;

-- name: drain_requested
SELECT drain_requested FROM hosts WHERE name = %(host)s;

-- name: pending_commands
SELECT id, command, args, created_at FROM agent_commands
WHERE host = %(host)s AND acked_at IS NULL
ORDER BY id;

-- name: ack_command
UPDATE agent_commands SET acked_at = now(), outcome = %(outcome)s WHERE id = %(id)s;

-- name: command_done
UPDATE agent_commands SET done_at = now() WHERE id = ANY(%(ids)s) AND done_at IS NULL;

-- name: send_command
-- The drain flag is the host's lasting state (an agent that restarts comes back drained);
-- the command row is the event the running agent acknowledges.
WITH flag AS (
    INSERT INTO hosts (name, drain_requested)
    VALUES (%(host)s, %(command)s = 'drain')
    ON CONFLICT (name) DO UPDATE SET drain_requested = CASE
        WHEN %(command)s = 'drain' THEN true
        WHEN %(command)s = 'undrain' THEN false
        ELSE hosts.drain_requested END
)
INSERT INTO agent_commands (host, command, args) VALUES (%(host)s, %(command)s, %(args)s)
RETURNING id;

-- name: command_state
SELECT id, host, command, acked_at, done_at, outcome FROM agent_commands WHERE id = ANY(%(ids)s);

-- name: insert_logs
INSERT INTO agent_logs (host, ts, level, logger, message, task_id, extra)
SELECT %(host)s, t.ts, t.level, t.logger, t.message, t.task_id, t.extra
FROM unnest(%(ts)s::timestamptz[], %(levels)s::text[], %(loggers)s::text[],
            %(messages)s::text[], %(task_ids)s::bigint[], %(extras)s::jsonb[])
     AS t(ts, level, logger, message, task_id, extra);

-- name: prune_logs
DELETE FROM agent_logs
WHERE host = %(host)s
  AND id <= (SELECT id FROM agent_logs WHERE host = %(host)s ORDER BY id DESC
             OFFSET %(keep)s LIMIT 1);

-- name: recent_logs
-- `levels`: the levels to show (NULL: all); `since`: only lines at or after it (NULL: any).
SELECT id, host, ts, level, logger, message, task_id FROM (
    SELECT * FROM agent_logs
    WHERE (%(host)s::text IS NULL OR host = %(host)s::text) AND id > %(after_id)s
      AND (%(levels)s::text[] IS NULL OR level = ANY(%(levels)s::text[]))
      AND (%(since)s::timestamptz IS NULL OR ts >= %(since)s::timestamptz)
    ORDER BY id DESC LIMIT %(limit)s
) AS recent ORDER BY id;

-- name: throughput
-- Tasks that succeeded per minute over the last minutes (0 = this minute), for the sparkline.
SELECT floor(extract(epoch FROM now() - finished_at) / 60)::int AS ago, count(*) AS n
FROM tasks
WHERE finished_at > now() - make_interval(mins => %(minutes)s) AND state = 'succeeded'
GROUP BY 1;

-- name: storage_id
SELECT storage_id::text AS storage_id FROM fleet_storage;

-- name: set_storage_id
INSERT INTO fleet_storage (storage_id) VALUES (%(storage_id)s::uuid)
ON CONFLICT (one) DO UPDATE SET storage_id = EXCLUDED.storage_id, created_at = now();

-- name: forget_host
-- A host the inventory no longer declares, gone for good: its rows go (its finished tasks keep
-- its name). Only when it holds no task and its agent's session is not alive.
WITH held AS (
    SELECT count(*) AS n FROM tasks WHERE host = %(host)s AND state = 'running'
), alive AS (
    SELECT count(*) AS n FROM host_beats
    WHERE name = %(host)s AND session_key IN (SELECT contentctl_live_sessions())
), gone_beat AS (
    DELETE FROM host_beats WHERE name = %(host)s
      AND (SELECT n FROM held) = 0 AND (SELECT n FROM alive) = 0
), gone_counts AS (
    DELETE FROM host_daily_counts WHERE host = %(host)s
      AND (SELECT n FROM held) = 0 AND (SELECT n FROM alive) = 0
), gone_commands AS (
    DELETE FROM agent_commands WHERE host = %(host)s
      AND (SELECT n FROM held) = 0 AND (SELECT n FROM alive) = 0
), gone_host AS (
    DELETE FROM hosts WHERE name = %(host)s
      AND (SELECT n FROM held) = 0 AND (SELECT n FROM alive) = 0
    RETURNING name
)
SELECT (SELECT n FROM held) AS held, (SELECT n FROM alive) AS alive,
       (SELECT count(*) FROM gone_host) AS forgotten,
       EXISTS (SELECT 1 FROM hosts WHERE name = %(host)s)
       OR EXISTS (SELECT 1 FROM host_beats WHERE name = %(host)s) AS known;
