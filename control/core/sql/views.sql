-- What the CLI and the dashboard list: tasks by filter, one task in full.
-- One named block each (`-- name: NAME`), loaded once by control/core/sql/__init__.py.
-- Parameters are psycopg's named placeholders; nothing here is built by string formatting.

-- name: task_by_id
SELECT * FROM tasks WHERE id = %(id)s;

-- name: list_tasks
-- A page of tasks, newest first. `state` filters on what the operator sees
-- (contentctl_shown_state, migration 0005: a scheduled task whose time has come is queued).
SELECT * FROM tasks
WHERE (%(state)s::text IS NULL OR contentctl_shown_state(state, run_at) = %(state)s::text)
  AND (%(type)s::text IS NULL OR type = %(type)s::text)
  AND (%(host)s::text IS NULL OR host = %(host)s::text)
  AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: tasks_page
-- The dashboard's task table: filters, a text search (payload, error, host), three orders,
-- and a page of it.
SELECT id, type, state, priority, attempts, max_attempts, host, progress, progress_stage,
       error_message, media_id, created_at, started_at, finished_at, run_at, payload
FROM tasks
WHERE (%(state)s::text IS NULL OR contentctl_shown_state(state, run_at) = %(state)s::text)
  AND (%(type)s::text IS NULL OR type = %(type)s::text)
  AND (%(host)s::text IS NULL OR host = %(host)s::text)
  AND (%(text)s::text IS NULL OR payload::text ILIKE %(text)s::text
       OR error_message ILIKE %(text)s::text OR host ILIKE %(text)s::text)
ORDER BY CASE WHEN %(sort)s::text = 'priority' THEN priority END DESC NULLS LAST,
         CASE WHEN %(sort)s::text = 'oldest' THEN id END ASC,
         id DESC
OFFSET %(offset)s LIMIT %(limit)s;
