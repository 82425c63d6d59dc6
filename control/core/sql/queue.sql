-- The queue: enqueue, claim (SKIP LOCKED), leases, completion, failure, retry, cancel,
-- and the rolled-up counts the status query reads.
-- One named block each (`-- name: NAME`), loaded once by control/core/sql/__init__.py.
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

-- name: announce
-- `t XID N TYPES` (agent/wakeup.py): N tasks of TYPES claimable, made by this transaction; the
-- agents rank themselves by XID and answer one at a time, not all at once.
SELECT pg_notify('contentctl_tasks',
                 't ' || pg_current_xact_id()::text || ' ' || %(n)s::int || ' ' || %(types)s);

-- name: claim
-- Expired leases first (their agent died or lost the network: the same path re-claims them,
-- there is no reaper), then pending work by priority and age. One statement, SKIP LOCKED; it
-- also counts the claims into the host's daily counters. This is the claim without caps (the
-- common case); claim_capped below adds worker limits. Queue.claim writes `types`, `limit`
-- (and `capped`, `caps`) into the text as literals, so that the server can keep one plan per
-- distinct claim: planning was most of a claim's cost, and a plan made without their values
-- (a generic plan) sorted the backlog.
WITH expired AS (
    SELECT id, priority, run_at FROM tasks
    WHERE state = 'running' AND lease_expires_at < now()
      AND cancel_requested_at IS NULL AND attempts < max_attempts
      AND type = ANY(%(types)s)
    ORDER BY lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), ready AS (
    SELECT id, priority, run_at FROM tasks
    WHERE state IN ('queued', 'scheduled') AND run_at <= now() AND type = ANY(%(types)s)
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id FROM (
        SELECT id, 0 AS pass, priority, run_at FROM expired
        UNION ALL SELECT id, 1, priority, run_at FROM ready
    ) AS c
    ORDER BY pass, priority DESC, run_at, id
    LIMIT %(limit)s
), claimed AS (
    UPDATE tasks AS t
    SET state = 'running', host = %(host)s, attempts = t.attempts + 1,
        attempt_token = gen_random_uuid(),
        lease_expires_at = now() + make_interval(secs => %(lease_s)s),
        lease_session = %(session)s, lease_orphaned_at = NULL,
        started_at = now(), progress = NULL, progress_stage = NULL, progress_at = now(),
        updated_at = now()
    -- ids as an array: the join stays on the primary key whatever the estimate of `picked`
    -- (a generic plan guessed 1,000 rows and read the whole table into a hash join)
    WHERE t.id = ANY(ARRAY(SELECT id FROM picked))
    RETURNING t.id, t.type, t.payload, t.priority, t.run_at, t.attempts, t.max_attempts,
              t.timeout_s, t.attempt_token, t.media_id
), counted AS (
    -- the host's daily counter (worker limits per day) in the same statement: no second write
    INSERT INTO host_daily_counts (host, type, day, count)
    SELECT %(host)s, type, %(day)s::date, count(*) FROM claimed
    WHERE %(day)s::date IS NOT NULL
    GROUP BY type
    ON CONFLICT (host, type, day) DO UPDATE SET count = host_daily_counts.count + excluded.count
), told AS (
    -- In answer to announcements (agent/wakeup.py, `tell`): when nothing claimable of these
    -- types is left beside what this claim takes, say so with this statement's snapshot, and
    -- the agents ranked after this one stand down instead of claiming nothing.
    SELECT pg_notify('contentctl_tasks',
                     'c ' || pg_current_snapshot()::text || ' ' || array_to_string(%(types)s::text[], ','))
    WHERE %(tell)s
      AND NOT EXISTS (
        SELECT 1 FROM tasks
        WHERE state IN ('queued', 'scheduled') AND run_at <= now() AND type = ANY(%(types)s)
          AND id <> ALL(ARRAY(SELECT id FROM picked)))
      AND NOT EXISTS (
        SELECT 1 FROM tasks
        WHERE state = 'running' AND lease_expires_at < now()
          AND cancel_requested_at IS NULL AND attempts < max_attempts
          AND type = ANY(%(types)s) AND id <> ALL(ARRAY(SELECT id FROM picked)))
)
-- the columns of agent's ClaimedTask, by name (psycopg's class_row builds it); `told` is read
-- in a condition of no row (evaluated once, first), so that it runs when nothing is claimed
SELECT id, type, coalesce(payload, '{}'::jsonb) AS payload, priority, attempts, max_attempts,
       timeout_s, attempt_token AS token, media_id
FROM claimed WHERE (SELECT count(*) FROM told) >= 0 ORDER BY priority DESC, run_at, id;

-- name: claim_capped
-- The claim with worker limits. `capped`/`caps`: types that may take at most so many tasks in
-- this claim (a worker limit: tasks left in the run, one at a time under a delay); every other
-- type fills `limit`, so a limit on one type never slows the others. From `claimed` on it is
-- the claim above, word for word: change the two together (each is kept whole, so that either
-- can be read, and EXPLAINed, as the one statement the server runs).
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
        -- one type through tasks_claimable_type_idx. Written as a range ordered by `type`, not
        -- `type = c.type`: the planner cannot tell how many tasks one type has, and with `=` it
        -- may walk tasks_claimable_idx instead, through every pending task of the other types;
        -- the range keeps `type` in the order, which only this index gives without a sort
        WHERE state IN ('queued', 'scheduled') AND run_at <= now()
          AND type >= c.type AND type <= c.type
        ORDER BY type, priority DESC, run_at, id
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
        lease_session = %(session)s, lease_orphaned_at = NULL,
        started_at = now(), progress = NULL, progress_stage = NULL, progress_at = now(),
        updated_at = now()
    WHERE t.id = ANY(ARRAY(SELECT id FROM picked))  -- on the primary key (see claim)
    RETURNING t.id, t.type, t.payload, t.priority, t.run_at, t.attempts, t.max_attempts,
              t.timeout_s, t.attempt_token, t.media_id
), counted AS (
    -- the host's daily counter (worker limits per day) in the same statement: no second write
    INSERT INTO host_daily_counts (host, type, day, count)
    SELECT %(host)s, type, %(day)s::date, count(*) FROM claimed
    WHERE %(day)s::date IS NOT NULL
    GROUP BY type
    ON CONFLICT (host, type, day) DO UPDATE SET count = host_daily_counts.count + excluded.count
), told AS (
    -- In answer to announcements (agent/wakeup.py, `tell`): when nothing claimable of these
    -- types is left beside what this claim takes, say so with this statement's snapshot, and
    -- the agents ranked after this one stand down instead of claiming nothing.
    SELECT pg_notify('contentctl_tasks',
                     'c ' || pg_current_snapshot()::text || ' ' || array_to_string(%(types)s::text[], ','))
    WHERE %(tell)s
      AND NOT EXISTS (
        SELECT 1 FROM tasks
        WHERE state IN ('queued', 'scheduled') AND run_at <= now() AND type = ANY(%(types)s)
          AND id <> ALL(ARRAY(SELECT id FROM picked)))
      AND NOT EXISTS (
        SELECT 1 FROM tasks
        WHERE state = 'running' AND lease_expires_at < now()
          AND cancel_requested_at IS NULL AND attempts < max_attempts
          AND type = ANY(%(types)s) AND id <> ALL(ARRAY(SELECT id FROM picked)))
)
-- the columns of agent's ClaimedTask, by name (psycopg's class_row builds it); `told` is read
-- in a condition of no row (evaluated once, first), so that it runs when nothing is claimed
SELECT id, type, coalesce(payload, '{}'::jsonb) AS payload, priority, attempts, max_attempts,
       timeout_s, attempt_token AS token, media_id
FROM claimed WHERE (SELECT count(*) FROM told) >= 0 ORDER BY priority DESC, run_at, id;

-- name: sweep_expired
-- Expired leases that must not run again: cancelled while their agent was gone, or out of
-- attempts (an agent that keeps dying on a task must not take the fleet down with it). A
-- function of the schema's (migration 0015): it writes other hosts' tasks, which an agent's
-- own rights do not reach.
SELECT id, state FROM contentctl_sweep_expired();

-- name: lapse
-- Leases whose agent's database session is gone (the agent exited or was killed, or TCP
-- keepalives found its machine gone: the server dropped the session's advisory lock, see
-- migration 0014) run out now instead of when their time does; the claim then takes them as
-- any expired lease. Tasks claimed before the server last started are left to their time: every
-- session ended then, and their agents may still be reconnecting. The look reads every running
-- task and the lock table: it is taken in turns, at most one every `turn_s` fleet-wide (the
-- UPDATE of fleet_sweep only one agent wins; the others look at nothing). A function of the
-- schema's, as the sweep above.
-- A lease whose session ended is orphaned first and runs out after `grace_s` (migration 0016):
-- an agent whose link came back re-keys its leases meanwhile and keeps its work.
SELECT id, type, host, lapsed FROM contentctl_lapse(%(turn_s)s, %(grace_s)s);

-- name: complete_many
-- Group commit: the completions that piled up while the previous one was being written.
UPDATE tasks AS t
SET state = 'succeeded', result = c.result, progress = 1.0, finished_at = now(),
    lease_expires_at = NULL, updated_at = now()
FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[], %(results)s::jsonb[]) AS c(id, token, result)
WHERE t.id = c.id AND t.attempt_token = c.token AND t.state = 'running'
RETURNING t.id;

-- name: fail
-- A retry is announced in the same statement (NOTIFY, delivered at commit): an idle agent sleeps
-- until its next task comes due, and this one's time is new.
WITH failed AS (
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
RETURNING id, state, run_at, type
)
SELECT id, state, run_at,
       CASE WHEN state = 'scheduled'
            THEN (SELECT true FROM pg_notify('contentctl_tasks',
                 't ' || pg_current_xact_id()::text || ' 1 ' || failed.type)) END AS announced
FROM failed;

-- name: release
-- Hand a running task back without burning an attempt (agent shutdown, drain deadline), and
-- announce it in the same statement (NOTIFY, delivered at commit): it is claimable again now.
WITH released AS (
UPDATE tasks
SET state = CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled' ELSE 'queued' END,
    finished_at = CASE WHEN cancel_requested_at IS NOT NULL THEN now() END,
    attempts = greatest(attempts - 1, 0), run_at = now(), host = NULL,
    lease_expires_at = NULL, attempt_token = NULL, started_at = NULL,
    progress = NULL, progress_stage = NULL, updated_at = now()
WHERE id = %(id)s AND attempt_token = %(token)s AND state = 'running'
RETURNING id, state, type
)
SELECT id, state,
       CASE WHEN state = 'queued'
            THEN (SELECT true FROM pg_notify('contentctl_tasks',
                 't ' || pg_current_xact_id()::text || ' 1 ' || released.type)) END AS announced
FROM released;

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
SET lease_expires_at = now() + make_interval(secs => %(lease_s)s),
    lease_session = coalesce(%(session)s, lease_session), lease_orphaned_at = NULL
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

-- name: stats_watermark
SELECT watermark FROM task_stats_meta;

-- name: stats
-- The queue's counts in one statement (one snapshot, one round trip, one result to read: as
-- three statements in a pipeline, psycopg's work for them was a sixth of an idle dashboard's
-- CPU). Rows by `part`: `live`, the claimable and running tasks, in two parts that each match
-- one partial index's predicate exactly (claimable, running), so neither reads the finished
-- rows; `done`, the rolled-up counts plus the tail after the watermark; `mark`, the watermark.
-- The watermark also comes as a value read before (`%(watermark)s`, a reader's last one):
-- as a subquery alone the planner could not see how recent it is, guessed a third of the table
-- and scanned all of it (0.8 s at 10M rows). The subquery stays as a filter, so a rollup
-- committed since that value was read is not counted twice.
SELECT 'live' AS part, type,
       CASE WHEN state = 'scheduled' AND run_at <= now() THEN 'queued' ELSE state END AS state,
       count(*) AS n, 0::bigint AS tail, NULL::timestamptz AS watermark
FROM tasks
WHERE state IN ('queued', 'scheduled')
GROUP BY 2, 3
UNION ALL
SELECT 'live', type, 'running', count(*), 0, NULL
FROM tasks
WHERE state = 'running'
GROUP BY 2
UNION ALL
SELECT 'done', type, state, sum(n)::bigint, sum(tail)::bigint, NULL FROM (
    SELECT type, state, count AS n, 0 AS tail FROM task_stats
    UNION ALL
    SELECT type, state, count(*) AS n, count(*) AS tail
    FROM tasks
    WHERE finished_at >= %(watermark)s
      AND finished_at >= (SELECT watermark FROM task_stats_meta)
      AND state IN ('succeeded', 'failed', 'cancelled')
    GROUP BY type, state
) AS parts
GROUP BY type, state
UNION ALL
SELECT 'mark', NULL, NULL, NULL, NULL, watermark FROM task_stats_meta;

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

-- name: next_due
-- Seconds until the next delayed or retrying task of these types comes due (NULL: none waits),
-- by the server's clock: an idle agent sleeps that long, not a fixed poll. One probe of
-- tasks_scheduled_idx per type.
SELECT extract(epoch FROM min(d.run_at) - now())::float8 AS due_in_s
FROM unnest(%(types)s::text[]) AS t(type)
CROSS JOIN LATERAL (
    SELECT run_at FROM tasks
    WHERE state = 'scheduled' AND type = t.type AND run_at > now()
    ORDER BY run_at
    LIMIT 1
) AS d;

-- name: types_with_work
SELECT DISTINCT type FROM tasks
WHERE state IN ('queued', 'scheduled') AND run_at <= now() AND type = ANY(%(types)s);

-- name: raise_priority
UPDATE tasks SET priority = priority + %(by)s, updated_at = now()
WHERE id = %(id)s AND state IN ('queued', 'scheduled')
RETURNING priority;
