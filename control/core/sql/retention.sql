-- Retention (migration 0011): finished rows go in batches, task rows folded into task_daily
-- first. Only rows the status rollup has counted (finished before its watermark) are pruned,
-- and never the tasks of a media item's current generation (its stage states are read from
-- them); a superseded generation's tasks go like any other.

-- name: prune_tasks
-- The batch starts where the last one ended (%(after)s): an index scan from the start would
-- walk every entry the earlier batches deleted (not vacuumed yet) again, batch after batch.
WITH doomed AS (
    SELECT t.id FROM tasks AS t
    WHERE t.finished_at < %(watermark)s AND t.finished_at >= %(after)s
      AND ((t.state = 'succeeded' AND t.finished_at < %(succeeded_before)s)
        OR (t.state = 'cancelled' AND t.finished_at < %(cancelled_before)s)
        OR (t.state = 'failed' AND t.finished_at < %(failed_before)s))
      AND (t.media_id IS NULL OR coalesce((t.payload ->> 'generation')::int, 0)
           < (SELECT m.generation FROM media_items AS m WHERE m.id = t.media_id))
    ORDER BY t.finished_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM tasks AS t USING doomed WHERE t.id = doomed.id
    RETURNING t.type, coalesce(t.host, '') AS host, t.state, t.finished_at,
              extract(epoch FROM t.finished_at - coalesce(t.started_at, t.finished_at)) AS run_s
), folded AS (
    INSERT INTO task_daily AS d (day, type, host, state, count, total_s, max_s)
    SELECT (finished_at AT TIME ZONE 'UTC')::date, type, host, state, count(*),
           coalesce(sum(run_s), 0), coalesce(max(run_s), 0)
    FROM gone GROUP BY 1, 2, 3, 4
    ON CONFLICT (day, type, host, state) DO UPDATE
    SET count = d.count + excluded.count, total_s = d.total_s + excluded.total_s,
        max_s = greatest(d.max_s, excluded.max_s)
)
SELECT state, count(*) AS n, max(finished_at) AS last FROM gone GROUP BY state;

-- name: prune_tasks_count
SELECT t.state, count(*) AS n FROM tasks AS t
WHERE t.finished_at < %(watermark)s
  AND ((t.state = 'succeeded' AND t.finished_at < %(succeeded_before)s)
    OR (t.state = 'cancelled' AND t.finished_at < %(cancelled_before)s)
    OR (t.state = 'failed' AND t.finished_at < %(failed_before)s))
  AND (t.media_id IS NULL OR coalesce((t.payload ->> 'generation')::int, 0)
       < (SELECT m.generation FROM media_items AS m WHERE m.id = t.media_id))
GROUP BY t.state;

-- name: prune_commands
DELETE FROM agent_commands WHERE id IN (
    SELECT id FROM agent_commands WHERE coalesce(done_at, acked_at, created_at) < %(before)s
    LIMIT %(batch)s)
RETURNING id;

-- name: prune_commands_count
SELECT count(*) AS n FROM agent_commands WHERE coalesce(done_at, acked_at, created_at) < %(before)s;

-- name: prune_daily_counts
DELETE FROM host_daily_counts WHERE day < %(before)s::date RETURNING host;

-- name: prune_daily_counts_count
SELECT count(*) AS n FROM host_daily_counts WHERE day < %(before)s::date;

-- name: prune_audit
DELETE FROM audit_log WHERE id IN (
    SELECT id FROM audit_log WHERE at < %(before)s LIMIT %(batch)s)
RETURNING id;

-- name: prune_audit_count
SELECT count(*) AS n FROM audit_log WHERE at < %(before)s;

-- name: prune_incidents
DELETE FROM alert_incidents
WHERE closed_at < %(before)s AND recovered_at IS NOT NULL
RETURNING id;

-- name: prune_incidents_count
SELECT count(*) AS n FROM alert_incidents WHERE closed_at < %(before)s AND recovered_at IS NOT NULL;

-- name: media_files_expired
-- Items whose current generation succeeded in every task before the cutoff and still list
-- this output (source or audio).
SELECT m.id, m.outputs ->> %(output)s AS rel
FROM media_items AS m
JOIN LATERAL (
    SELECT bool_and(t.state = 'succeeded') AS ok, max(t.finished_at) AS done
    FROM tasks AS t
    WHERE t.media_id = m.id AND coalesce((t.payload ->> 'generation')::int, 0) = m.generation
) AS g ON true
WHERE m.outputs ? %(output)s AND g.ok AND g.done < %(before)s
ORDER BY m.id;

-- name: media_output_pruned
UPDATE media_items
SET outputs = outputs - %(output)s::text,
    metadata = jsonb_set(metadata, '{pruned}',
        coalesce(metadata -> 'pruned', '{}'::jsonb) || jsonb_build_object(%(output)s::text, now())),
    updated_at = now()
WHERE id = %(id)s;

-- name: maintenance_claim
INSERT INTO maintenance_runs (job, day, runner) VALUES (%(job)s, %(day)s, %(runner)s)
ON CONFLICT DO NOTHING
RETURNING job;

-- name: maintenance_done
UPDATE maintenance_runs SET finished_at = now(), result = %(result)s
WHERE job = %(job)s AND day = %(day)s;

-- name: prune_maintenance_runs
DELETE FROM maintenance_runs WHERE day < %(before)s::date RETURNING job;

-- name: task_daily_totals
SELECT type, host, state, sum(count)::bigint AS count, sum(total_s) AS total_s,
       max(max_s) AS max_s
FROM task_daily GROUP BY type, host, state;

-- name: audit_insert
INSERT INTO audit_log (actor, via, action, targets, outcome, detail)
VALUES (%(actor)s, %(via)s, %(action)s, %(targets)s, %(outcome)s, %(detail)s);

-- name: audit_recent
SELECT id, at, actor, via, action, targets, outcome, detail FROM audit_log
WHERE %(since)s::timestamptz IS NULL OR at >= %(since)s::timestamptz
ORDER BY id DESC LIMIT %(limit)s;
