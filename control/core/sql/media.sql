-- Media items and the pipeline's flow from stage to stage; reconcile's reads.
-- One named block each (`-- name: NAME`), loaded once by control/core/sql/__init__.py.
-- Parameters are psycopg's named placeholders; nothing here is built by string formatting.

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
                         upload_date, metadata, options, source_id)
VALUES (%(kind)s, %(source)s, %(unique_key)s, %(feed_url)s, %(title)s, %(channel)s,
        %(duration_s)s, %(upload_date)s, %(metadata)s, %(options)s, %(source_id)s)
ON CONFLICT (unique_key) DO NOTHING
RETURNING *;

-- name: media_item_by_key
SELECT * FROM media_items WHERE unique_key = %(unique_key)s;

-- name: media_items
SELECT * FROM media_items
WHERE (%(id)s::bigint IS NULL OR id = %(id)s::bigint)
  AND (%(source_id)s::bigint IS NULL OR source_id = %(source_id)s::bigint)
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
RETURNING id, type;

-- name: all_media_items
SELECT id, kind, generation, outputs FROM media_items ORDER BY id;
