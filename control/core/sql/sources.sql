-- Sources (migration 0009).

-- name: source_insert
INSERT INTO sources (name, url, kind, options) VALUES (%(name)s, %(url)s, %(kind)s, %(options)s)
RETURNING id;

-- name: source_lock
SELECT * FROM sources WHERE id = %(id)s FOR UPDATE;

-- name: source_polled
UPDATE sources
SET polls = polls + 1, last_polled_at = now(), last_error = NULL,
    etag = coalesce(%(etag)s, etag), last_modified = coalesce(%(last_modified)s, last_modified),
    items_found = items_found + %(found)s
WHERE id = %(id)s;

-- name: source_failed
UPDATE sources SET last_error = %(error)s, last_polled_at = now() WHERE id = %(id)s;

-- name: sources_all
SELECT s.*, c.next_run_at, c.paused
FROM sources AS s LEFT JOIN schedules AS c ON c.name = 'source:' || s.name
ORDER BY s.id;

-- name: source_by_name
SELECT * FROM sources WHERE name = %(name)s OR id::text = %(name)s;

-- name: source_delete
DELETE FROM sources WHERE id = %(id)s;

-- name: schedule_delete
DELETE FROM schedules WHERE name = %(name)s;

-- name: set_media_source
UPDATE media_items SET source_id = %(source_id)s WHERE id = %(id)s;

-- name: source_options
UPDATE sources SET options = %(options)s WHERE id = %(id)s;

-- name: schedule_payload
UPDATE schedules SET payload = %(payload)s WHERE name = %(name)s;
