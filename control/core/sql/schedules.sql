-- Recurring schedules (migration 0008).

-- name: schedule_upsert
INSERT INTO schedules (name, task_type, payload, cron, every_s, next_run_at)
VALUES (%(name)s, %(task_type)s, %(payload)s, %(cron)s, %(every_s)s, %(next_run_at)s)
ON CONFLICT (name) DO UPDATE
SET task_type = EXCLUDED.task_type, payload = EXCLUDED.payload, cron = EXCLUDED.cron,
    every_s = EXCLUDED.every_s, next_run_at = EXCLUDED.next_run_at;

-- name: schedules_all
SELECT name, task_type, payload, cron, every_s, next_run_at, paused, last_run_at, last_task_id
FROM schedules ORDER BY name;

-- name: schedules_due
SELECT name, task_type, payload, cron, every_s, next_run_at
FROM schedules WHERE NOT paused AND next_run_at <= %(now)s ORDER BY next_run_at;

-- name: schedule_advance
-- The compare-and-set: only the process that saw this very tick moves it on.
UPDATE schedules SET next_run_at = %(next)s, last_run_at = %(due)s
WHERE name = %(name)s AND next_run_at = %(due)s AND NOT paused
RETURNING name;

-- name: schedule_task
UPDATE schedules SET last_task_id = %(task_id)s WHERE name = %(name)s;

-- name: schedule_pause
UPDATE schedules SET paused = %(paused)s WHERE name = %(name)s RETURNING name;
