-- Recurring schedules (migration 0008).

-- name: schedule_upsert
INSERT INTO schedules (name, task_type, payload, cron, every_s, next_run_at, timezone)
VALUES (%(name)s, %(task_type)s, %(payload)s, %(cron)s, %(every_s)s, %(next_run_at)s,
        %(timezone)s)
ON CONFLICT (name) DO UPDATE
SET task_type = EXCLUDED.task_type, payload = EXCLUDED.payload, cron = EXCLUDED.cron,
    every_s = EXCLUDED.every_s, next_run_at = EXCLUDED.next_run_at,
    timezone = EXCLUDED.timezone;

-- name: schedules_all
SELECT name, task_type, payload, cron, every_s, timezone, next_run_at, paused, last_run_at,
       last_task_id
FROM schedules ORDER BY name;

-- name: schedules_due
-- Without payloads (migration 0015's function: an agent never reads one).
SELECT name, task_type, cron, every_s, next_run_at, timezone
FROM contentctl_schedules_due(%(now)s);

-- name: schedule_fire
-- The compare-and-set on this tick, the task and its announcement (migration 0015).
SELECT contentctl_schedule_fire(%(name)s, %(due)s, %(next)s, %(max_attempts)s, %(timeout_s)s)
    AS id;

-- name: schedule_pause
UPDATE schedules SET paused = %(paused)s WHERE name = %(name)s RETURNING name;

-- name: schedule_remove
DELETE FROM schedules WHERE name = %(name)s RETURNING name;
