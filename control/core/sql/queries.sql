-- The queue's queries, one named block each (`-- name: NAME`), loaded once by control/sql.py.
-- Parameters are psycopg's named placeholders; nothing here is built by string formatting.

-- name: insert_task
INSERT INTO tasks (type, payload, priority, state, run_at, max_attempts, timeout_s, unique_key, media_id)
VALUES (%(type)s, %(payload)s, %(priority)s,
        CASE WHEN %(delay_s)s > 0 THEN 'scheduled' ELSE 'queued' END,
        now() + make_interval(secs => %(delay_s)s),
        %(max_attempts)s, %(timeout_s)s, %(unique_key)s, %(media_id)s)
ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('queued', 'scheduled', 'running')
DO NOTHING
RETURNING id;

-- name: insert_tasks_bulk
INSERT INTO tasks (type, payload, priority, state, run_at, max_attempts, timeout_s, media_id)
SELECT t.type, t.payload, t.priority,
       CASE WHEN t.delay_s > 0 THEN 'scheduled' ELSE 'queued' END,
       now() + make_interval(secs => t.delay_s),
       t.max_attempts, t.timeout_s, t.media_id
FROM unnest(%(types)s::text[], %(payloads)s::jsonb[], %(priorities)s::int[], %(delays)s::float8[],
            %(max_attempts)s::int[], %(timeouts)s::float8[], %(media_ids)s::bigint[])
     AS t(type, payload, priority, delay_s, max_attempts, timeout_s, media_id)
RETURNING id;

-- name: live_task_by_unique_key
SELECT id FROM tasks
WHERE unique_key = %(unique_key)s AND state IN ('queued', 'scheduled', 'running');

-- name: notify
SELECT pg_notify('contentctl_tasks', %(payload)s);

-- name: claim
-- Expired leases first (their agent died or lost the network: the same path re-claims them,
-- there is no reaper), then pending work by priority and age. One statement, SKIP LOCKED.
-- `capped`/`caps`: types that may take at most so many tasks in this claim (a worker limit:
-- tasks left in the run, one at a time under a delay); every other type fills `limit`, so a
-- limit on one type never slows the others.
WITH expired AS (
    SELECT id, type, priority, run_at FROM tasks
    WHERE state = 'running' AND lease_expires_at < now()
      AND cancel_requested_at IS NULL AND attempts < max_attempts
      AND type = ANY(%(types)s)
    ORDER BY lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), ready AS (
    SELECT id, type, priority, run_at FROM tasks
    WHERE state IN ('queued', 'scheduled') AND run_at <= now()
      AND type = ANY(%(types)s) AND type <> ALL(%(capped)s::text[])
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), ready_capped AS (
    SELECT r.id, r.type, r.priority, r.run_at
    FROM unnest(%(capped)s::text[], %(caps)s::int[]) AS c(type, cap)
    CROSS JOIN LATERAL (
        SELECT id, type, priority, run_at FROM tasks
        WHERE state IN ('queued', 'scheduled') AND run_at <= now() AND type = c.type
        ORDER BY priority DESC, run_at, id
        LIMIT c.cap
        FOR UPDATE SKIP LOCKED
    ) AS r
), candidates AS (
    SELECT id, type, 0 AS pass, priority, run_at FROM expired
    UNION ALL SELECT id, type, 1, priority, run_at FROM ready
    UNION ALL SELECT id, type, 1, priority, run_at FROM ready_capped
), ranked AS (
    SELECT c.id, c.pass, c.priority, c.run_at, k.cap,
           row_number() OVER (PARTITION BY c.type ORDER BY c.pass, c.priority DESC, c.run_at, c.id)
             AS nth
    FROM candidates AS c
    LEFT JOIN unnest(%(capped)s::text[], %(caps)s::int[]) AS k(type, cap) ON k.type = c.type
), picked AS (
    SELECT id FROM ranked
    WHERE cap IS NULL OR nth <= cap
    ORDER BY pass, priority DESC, run_at, id
    LIMIT %(limit)s
), claimed AS (
    UPDATE tasks AS t
    SET state = 'running', host = %(host)s, attempts = t.attempts + 1,
        attempt_token = gen_random_uuid(),
        lease_expires_at = now() + make_interval(secs => %(lease_s)s),
        started_at = now(), progress = NULL, progress_stage = NULL, progress_at = now(),
        updated_at = now()
    FROM picked
    WHERE t.id = picked.id
    RETURNING t.id, t.type, t.payload, t.priority, t.run_at, t.attempts, t.max_attempts,
              t.timeout_s, t.attempt_token, t.media_id
)
SELECT * FROM claimed ORDER BY priority DESC, run_at, id;

-- name: sweep_expired
-- Expired leases that must not run again: cancelled while their agent was gone, or out of
-- attempts (an agent that keeps dying on a task must not take the fleet down with it).
UPDATE tasks
SET state = CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled' ELSE 'failed' END,
    error_type = CASE WHEN cancel_requested_at IS NOT NULL THEN error_type ELSE 'LeaseExpired' END,
    error_message = CASE WHEN cancel_requested_at IS NOT NULL THEN error_message
        ELSE 'lease expired on host ' || coalesce(host, '?') || ' after ' || attempts || ' attempts' END,
    finished_at = now(), lease_expires_at = NULL, updated_at = now()
WHERE state = 'running' AND lease_expires_at < now()
  AND (cancel_requested_at IS NOT NULL OR attempts >= max_attempts)
RETURNING id, state;

-- name: complete_many
-- Group commit: the completions that piled up while the previous one was being written.
UPDATE tasks AS t
SET state = 'succeeded', result = c.result, progress = 1.0, finished_at = now(),
    lease_expires_at = NULL, updated_at = now()
FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[], %(results)s::jsonb[]) AS c(id, token, result)
WHERE t.id = c.id AND t.attempt_token = c.token AND t.state = 'running'
RETURNING t.id;

-- name: fail
UPDATE tasks
SET state = CASE
        WHEN cancel_requested_at IS NOT NULL THEN 'cancelled'
        WHEN %(retryable)s AND attempts < max_attempts THEN 'scheduled'
        ELSE 'failed' END,
    run_at = CASE
        WHEN cancel_requested_at IS NULL AND %(retryable)s AND attempts < max_attempts
        THEN now() + make_interval(secs => %(backoff_s)s) ELSE run_at END,
    finished_at = CASE
        WHEN cancel_requested_at IS NULL AND %(retryable)s AND attempts < max_attempts
        THEN NULL ELSE now() END,
    error_type = %(error_type)s, error_message = %(error_message)s,
    error_traceback = %(error_traceback)s,
    lease_expires_at = NULL, updated_at = now()
WHERE id = %(id)s AND attempt_token = %(token)s AND state = 'running'
RETURNING id, state, run_at;

-- name: release
-- Hand a running task back without burning an attempt (agent shutdown, drain deadline).
UPDATE tasks
SET state = CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled' ELSE 'queued' END,
    finished_at = CASE WHEN cancel_requested_at IS NOT NULL THEN now() END,
    attempts = greatest(attempts - 1, 0), run_at = now(), host = NULL,
    lease_expires_at = NULL, attempt_token = NULL, started_at = NULL,
    progress = NULL, progress_stage = NULL, updated_at = now()
WHERE id = %(id)s AND attempt_token = %(token)s AND state = 'running'
RETURNING id, state;

-- name: acknowledge_cancel
UPDATE tasks
SET state = 'cancelled', finished_at = now(), lease_expires_at = NULL, updated_at = now()
WHERE id = %(id)s AND attempt_token = %(token)s AND state = 'running'
RETURNING id;

-- name: progress
UPDATE tasks
SET progress = %(progress)s, progress_stage = %(stage)s, progress_at = now(), updated_at = now()
WHERE id = %(id)s AND attempt_token = %(token)s AND state = 'running'
RETURNING cancel_requested_at IS NOT NULL AS cancel_requested;

-- name: renew_leases
-- The heartbeat renews the leases it still holds; a token that does not come back was taken
-- over (the agent must abandon that attempt). Committed without waiting for the disk: a renewal
-- lost in a server crash leaves the previous lease, still two thirds long, to the next one.
UPDATE tasks
SET lease_expires_at = now() + make_interval(secs => %(lease_s)s)
WHERE state = 'running' AND attempt_token = ANY(%(tokens)s::uuid[])
  AND set_config('synchronous_commit', 'off', true) IS NOT NULL
RETURNING id, attempt_token, cancel_requested_at IS NOT NULL AS cancel_requested;

-- name: cancel
-- By ids, or by type and state (NULL: any); only unfinished tasks are touched.
WITH target AS (
    SELECT id, state FROM tasks
    WHERE (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
      AND (%(types)s::text[] IS NULL OR type = ANY(%(types)s::text[]))
      AND state = ANY(%(states)s::text[])
    FOR UPDATE
)
UPDATE tasks AS t
SET state = CASE WHEN target.state = 'running' THEN 'running' ELSE 'cancelled' END,
    finished_at = CASE WHEN target.state = 'running' THEN NULL ELSE now() END,
    cancel_requested_at = now(), updated_at = now()
FROM target
WHERE t.id = target.id
RETURNING t.id, t.state, t.host;

-- name: lock_stats_meta_shared
SELECT watermark FROM task_stats_meta FOR SHARE;

-- name: retry_failed
-- Failed tasks back to the queue with a fresh set of attempts; the last error stays for the
-- record until the next attempt. Rows already rolled up leave the rollup in the same statement.
WITH target AS (
    SELECT id, type, finished_at AS old_finished_at FROM tasks
    WHERE state = 'failed'
      AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
      AND (%(type)s::text IS NULL OR type = %(type)s::text)
    FOR UPDATE
), moved AS (
    UPDATE tasks AS t
    SET state = 'queued', run_at = now(), attempts = 0, finished_at = NULL, host = NULL,
        attempt_token = NULL, lease_expires_at = NULL, cancel_requested_at = NULL,
        progress = NULL, progress_stage = NULL, updated_at = now()
    FROM target
    WHERE t.id = target.id
    RETURNING t.id, t.type, target.old_finished_at
), unrolled AS (
    UPDATE task_stats AS s
    SET count = s.count - d.n
    FROM (SELECT moved.type, count(*) AS n
          FROM moved, task_stats_meta AS m
          WHERE moved.old_finished_at < m.watermark
          GROUP BY moved.type) AS d
    WHERE s.type = d.type AND s.state = 'failed'
)
SELECT id FROM moved ORDER BY id;

-- name: stats_live
-- Two parts, each matching one partial index's predicate exactly (claimable, running), so
-- neither reads the finished rows.
SELECT type,
       CASE WHEN state = 'scheduled' AND run_at <= now() THEN 'queued' ELSE state END AS state,
       count(*) AS n
FROM tasks
WHERE state IN ('queued', 'scheduled')
GROUP BY 1, 2
UNION ALL
SELECT type, 'running' AS state, count(*) AS n
FROM tasks
WHERE state = 'running'
GROUP BY 1;

-- name: stats_finished
-- Rolled-up counts plus the tail after the watermark, in one snapshot. The watermark is a
-- scalar subquery (evaluated once), so the tail is an index range scan, not a join.
SELECT type, state, sum(n)::bigint AS n, sum(tail)::bigint AS tail FROM (
    SELECT type, state, count AS n, 0 AS tail FROM task_stats
    UNION ALL
    SELECT type, state, count(*) AS n, count(*) AS tail
    FROM tasks
    WHERE finished_at >= (SELECT watermark FROM task_stats_meta)
      AND state IN ('succeeded', 'failed', 'cancelled')
    GROUP BY type, state
) AS parts
GROUP BY type, state;

-- name: lock_stats_meta_nowait
SELECT watermark, now() - make_interval(secs => %(margin_s)s) AS new_watermark
FROM task_stats_meta FOR UPDATE NOWAIT;

-- name: rollup
INSERT INTO task_stats (type, state, count)
SELECT type, state, count(*) FROM tasks
WHERE finished_at >= %(old)s AND finished_at < %(new)s
  AND state IN ('succeeded', 'failed', 'cancelled')
GROUP BY type, state
ON CONFLICT (type, state) DO UPDATE SET count = task_stats.count + excluded.count;

-- name: set_watermark
UPDATE task_stats_meta SET watermark = %(new)s;

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
INSERT INTO host_beats (name, agent_state, last_heartbeat_at, heartbeat)
VALUES (%(name)s, %(agent_state)s, now(), %(heartbeat)s)
ON CONFLICT (name) DO UPDATE SET
    agent_state = excluded.agent_state, last_heartbeat_at = now(),
    heartbeat = excluded.heartbeat;

-- name: beat
-- An agent's heartbeat: one plain UPDATE of its unlogged row (no WAL), which also says whether
-- commands wait for it. The commit does not wait for the disk (synchronous_commit off for this
-- statement's own transaction): a heartbeat lost in a crash is replaced five seconds later.
-- No row (the table was emptied by a crash): the agent writes it again with `heartbeat`.
-- Measured here, this form costs the server half of what one statement with CTEs (upsert +
-- lease renewal + command check) did; lease renewal is its own statement, when due.
UPDATE host_beats
SET agent_state = %(agent_state)s, last_heartbeat_at = now(), heartbeat = %(heartbeat)s
WHERE name = %(name)s AND set_config('synchronous_commit', 'off', true) IS NOT NULL
RETURNING EXISTS (SELECT 1 FROM agent_commands
                  WHERE host = %(name)s AND acked_at IS NULL) AS commands_waiting;

-- name: commands_waiting
SELECT EXISTS (SELECT 1 FROM agent_commands
               WHERE host = %(name)s AND acked_at IS NULL) AS commands_waiting;

-- name: hosts_snapshot
SELECT h.name, h.address, b.agent_state, h.agent_version, h.code_hash, h.pid, h.started_at,
       h.enabled_tasks, h.declared, h.drain_requested, coalesce(b.heartbeat, '{}') AS heartbeat,
       b.last_heartbeat_at,
       extract(epoch FROM now() - b.last_heartbeat_at)::float8 AS heartbeat_age_s
FROM hosts AS h
LEFT JOIN host_beats AS b USING (name)
ORDER BY h.name;

-- name: running_tasks
SELECT id, type, host, progress, progress_stage FROM tasks WHERE state = 'running' ORDER BY id;

-- name: task_by_id
SELECT * FROM tasks WHERE id = %(id)s;

-- name: list_tasks
-- A page of tasks, newest first. `state` filters on what the operator sees: a scheduled task
-- whose time has come reads (and filters) as queued.
SELECT * FROM tasks
WHERE (%(state)s::text IS NULL
       OR (%(state)s::text = 'queued' AND (state = 'queued' OR (state = 'scheduled' AND run_at <= now())))
       OR (%(state)s::text = 'scheduled' AND state = 'scheduled' AND run_at > now())
       OR (%(state)s::text NOT IN ('queued', 'scheduled') AND state = %(state)s::text))
  AND (%(type)s::text IS NULL OR type = %(type)s::text)
  AND (%(host)s::text IS NULL OR host = %(host)s::text)
  AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: count_daily
SELECT type, count FROM host_daily_counts WHERE host = %(host)s AND day = %(day)s;

-- name: bump_daily
INSERT INTO host_daily_counts (host, type, day, count)
SELECT %(host)s, t.type, %(day)s, t.n
FROM unnest(%(types)s::text[], %(counts)s::int[]) AS t(type, n)
ON CONFLICT (host, type, day) DO UPDATE SET count = host_daily_counts.count + excluded.count;

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

-- name: types_with_work
SELECT DISTINCT type FROM tasks
WHERE state IN ('queued', 'scheduled') AND run_at <= now() AND type = ANY(%(types)s);

-- name: media_waiting_types
-- The task types an item's claimable tasks wait for (`add --wait` explaining a stall).
SELECT DISTINCT type FROM tasks
WHERE media_id = ANY(%(ids)s) AND state IN ('queued', 'scheduled') AND run_at <= now();

-- name: lock_media_item
-- Serialises the stage completions of one item (chunks finishing on several hosts at once).
SELECT * FROM media_items WHERE id = %(id)s FOR UPDATE;

-- name: chunk_results
SELECT DISTINCT ON ((payload->>'chunk')::int) result
FROM tasks
WHERE media_id = %(media_id)s AND type = 'transcribe' AND state = 'succeeded'
  AND coalesce((payload->>'generation')::int, 1) = %(generation)s
ORDER BY (payload->>'chunk')::int, finished_at DESC;

-- name: update_media_item
UPDATE media_items
SET title = coalesce(%(title)s, title), channel = coalesce(%(channel)s, channel),
    duration_s = coalesce(%(duration_s)s::float8, duration_s),
    upload_date = coalesce(%(upload_date)s, upload_date),
    metadata = coalesce(%(metadata)s, metadata), outputs = coalesce(%(outputs)s, outputs),
    updated_at = now()
WHERE id = %(id)s;

-- name: insert_media_item
-- A known unique key (the same video, the same episode) returns nothing: the caller reads the
-- existing item.
INSERT INTO media_items (kind, source, unique_key, feed_url, title, channel, duration_s,
                         upload_date, metadata, options)
VALUES (%(kind)s, %(source)s, %(unique_key)s, %(feed_url)s, %(title)s, %(channel)s,
        %(duration_s)s, %(upload_date)s, %(metadata)s, %(options)s)
ON CONFLICT (unique_key) DO NOTHING
RETURNING *;

-- name: media_item_by_key
SELECT * FROM media_items WHERE unique_key = %(unique_key)s;

-- name: media_items
SELECT * FROM media_items
WHERE (%(id)s::bigint IS NULL OR id = %(id)s::bigint)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: media_tasks
-- The tasks of the items' current generation: their stage states are read from these.
SELECT t.id, t.media_id, t.type, t.state, t.progress, t.progress_stage, t.host, t.payload,
       t.error_message, t.attempts, t.run_at
FROM tasks t JOIN media_items m ON m.id = t.media_id
WHERE t.media_id = ANY(%(ids)s)
  AND coalesce((t.payload->>'generation')::int, 1) = m.generation
ORDER BY t.id;

-- name: set_media_paths
UPDATE media_items SET outputs = %(outputs)s, updated_at = now() WHERE id = %(id)s;

-- name: bump_generation
-- Retry from a stage: a new generation (the caller cancels the old one's live tasks).
UPDATE media_items SET generation = generation + 1, outputs = %(outputs)s, updated_at = now()
WHERE id = %(id)s
RETURNING *;

-- name: live_media_tasks
SELECT id FROM tasks WHERE media_id = %(id)s AND state IN ('queued', 'scheduled', 'running');

-- name: expired_running
SELECT id, type, host, media_id, lease_expires_at FROM tasks
WHERE state = 'running' AND lease_expires_at < now()
ORDER BY id;

-- name: requeue_expired
-- reconcile --fix: expired leases with attempts left back to `queued` (the claim would take
-- them anyway; this makes the queue say so). The dead attempt stays counted.
UPDATE tasks
SET state = 'queued', run_at = now(), host = NULL, attempt_token = NULL, lease_expires_at = NULL,
    started_at = NULL, progress = NULL, progress_stage = NULL, updated_at = now(),
    error_type = 'LeaseExpired', error_message = 'lease expired on host ' || coalesce(host, '?')
WHERE state = 'running' AND lease_expires_at < now()
  AND cancel_requested_at IS NULL AND attempts < max_attempts
RETURNING id;

-- name: all_media_items
SELECT id, kind, generation, outputs FROM media_items ORDER BY id;

-- name: throughput
-- Tasks that succeeded per minute over the last minutes (0 = this minute), for the sparkline.
SELECT floor(extract(epoch FROM now() - finished_at) / 60)::int AS ago, count(*) AS n
FROM tasks
WHERE finished_at > now() - make_interval(mins => %(minutes)s) AND state = 'succeeded'
GROUP BY 1;

-- name: tasks_page
-- The dashboard's task table: filters, a text search (payload, error, host), three orders,
-- and a page of it.
SELECT id, type, state, priority, attempts, max_attempts, host, progress, progress_stage,
       error_message, media_id, created_at, started_at, finished_at, run_at, payload
FROM tasks
WHERE (%(state)s::text IS NULL
       OR (%(state)s::text = 'queued' AND (state = 'queued' OR (state = 'scheduled' AND run_at <= now())))
       OR (%(state)s::text = 'scheduled' AND state = 'scheduled' AND run_at > now())
       OR (%(state)s::text NOT IN ('queued', 'scheduled') AND state = %(state)s::text))
  AND (%(type)s::text IS NULL OR type = %(type)s::text)
  AND (%(host)s::text IS NULL OR host = %(host)s::text)
  AND (%(text)s::text IS NULL OR payload::text ILIKE %(text)s::text
       OR error_message ILIKE %(text)s::text OR host ILIKE %(text)s::text)
ORDER BY CASE WHEN %(sort)s::text = 'priority' THEN priority END DESC NULLS LAST,
         CASE WHEN %(sort)s::text = 'oldest' THEN id END ASC,
         id DESC
OFFSET %(offset)s LIMIT %(limit)s;

-- name: raise_priority
UPDATE tasks SET priority = priority + %(by)s, updated_at = now()
WHERE id = %(id)s AND state IN ('queued', 'scheduled')
RETURNING priority;
