-- Sources (migration 0009).

-- name: source_insert
INSERT INTO sources (name, url, kind, options) VALUES (%(name)s, %(url)s, %(kind)s, %(options)s)
RETURNING id;

-- name: source_get
-- No FOR UPDATE: a row lock marks the row, and a poll that finds nothing writes nothing. Two
-- polls of one source racing add each entry once anyway (the items' unique key).
SELECT * FROM sources WHERE id = %(id)s;

-- name: source_polled
-- Only when a poll changed something (new items, validators, the first poll's backlog).
UPDATE sources
SET polls = polls + 1, last_polled_at = now(), last_error = NULL,
    etag = coalesce(%(etag)s, etag), last_modified = coalesce(%(last_modified)s, last_modified),
    items_found = items_found + %(found)s
WHERE id = %(id)s;

-- name: sources_all
-- The last poll and its error come from the source's latest finished (or failed) poll task
-- (tasks_poll_source_idx); sources.last_polled_at is the last poll that changed something.
SELECT s.id, s.name, s.url, s.kind, s.options, s.polls, s.items_found, s.created_at,
       c.next_run_at, c.paused,
       greatest(s.last_polled_at, t.finished_at) AS last_polled_at,
       CASE WHEN t.state = 'succeeded' THEN NULL ELSE t.error_message END AS last_error
FROM sources AS s
LEFT JOIN schedules AS c ON c.name = 'source:' || s.name
LEFT JOIN LATERAL (
    SELECT state, error_message, coalesce(finished_at, updated_at) AS finished_at
    FROM tasks
    WHERE type = 'poll_source' AND (payload ->> 'source_id')::bigint = s.id
      AND (finished_at IS NOT NULL OR error_message IS NOT NULL)
    ORDER BY id DESC LIMIT 1
) AS t ON true
ORDER BY s.id;

-- name: source_by_url
SELECT id FROM sources WHERE url = %(url)s;

-- name: source_by_name
SELECT * FROM sources WHERE name = %(name)s OR id::text = %(name)s;

-- name: source_delete
DELETE FROM sources WHERE id = %(id)s;

-- name: schedule_delete
DELETE FROM schedules WHERE name = %(name)s;

-- name: source_options
UPDATE sources SET options = %(options)s WHERE id = %(id)s;

-- name: poll_validators
-- A poll's new ETag and Last-Modified into its source's schedule (migration 0015's function:
-- only the agent holding that poll, or the head, may write them).
SELECT contentctl_poll_validators(%(source_id)s, %(etag)s, %(last_modified)s);
