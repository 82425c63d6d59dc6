-- Alerts (migration 0011): the rules' queries and the incidents' life.

-- name: alert_media_failed
-- Items whose current generation has a failed task (tasks_failed_media_idx).
SELECT DISTINCT ON (m.id) m.id, m.title, m.source, t.error_message
FROM tasks AS t JOIN media_items AS m ON m.id = t.media_id
WHERE t.state = 'failed' AND coalesce((t.payload ->> 'generation')::int, 0) = m.generation
ORDER BY m.id, t.id DESC
LIMIT 1000;

-- name: alert_queue_age
SELECT type, extract(epoch FROM now() - min(run_at)) AS age_s FROM tasks
WHERE state = 'queued' AND run_at <= now()
GROUP BY type
HAVING extract(epoch FROM now() - min(run_at)) > %(age_s)s;

-- name: incident_open
INSERT INTO alert_incidents (key, rule, subject, message)
VALUES (%(key)s, %(rule)s, %(subject)s, %(message)s)
ON CONFLICT (key) WHERE closed_at IS NULL DO NOTHING
RETURNING id;

-- name: incident_close
UPDATE alert_incidents SET closed_at = now(), next_try_at = now()
WHERE closed_at IS NULL AND NOT (key = ANY(%(keys)s::text[]))
RETURNING id;

-- name: incident_sent
UPDATE alert_incidents
SET fired_at = CASE WHEN %(status)s = 'firing' THEN now() ELSE fired_at END,
    recovered_at = CASE WHEN %(status)s IN ('resolved', 'silent') THEN now() ELSE recovered_at END,
    attempts = 0, last_error = NULL
WHERE id = %(id)s;

-- name: incidents_recent
SELECT id, key, rule, subject, message, opened_at, closed_at, fired_at, recovered_at,
       attempts, last_error
FROM alert_incidents ORDER BY id DESC LIMIT %(limit)s;

-- name: incidents_due
-- To announce (open, not yet fired) or to close (ended, recovery not yet sent), up to a batch;
-- locked so that a second head delivering at once takes others.
SELECT * FROM alert_incidents
WHERE recovered_at IS NULL AND next_try_at <= now() AND (closed_at IS NOT NULL OR fired_at IS NULL)
ORDER BY id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: deliveries_of
SELECT incident_id, hook, status, attempts, next_try_at, delivered_at
FROM alert_deliveries WHERE incident_id = ANY(%(ids)s);

-- name: delivery_done
INSERT INTO alert_deliveries (incident_id, hook, status, attempts, delivered_at)
VALUES (%(id)s, %(hook)s, %(status)s, 1, now())
ON CONFLICT (incident_id, hook, status) DO UPDATE
SET attempts = alert_deliveries.attempts + 1, delivered_at = now(), last_error = NULL;

-- name: delivery_failed
INSERT INTO alert_deliveries (incident_id, hook, status, attempts, next_try_at, last_error)
VALUES (%(id)s, %(hook)s, %(status)s, 1, now() + make_interval(secs => %(delay_s)s), %(error)s)
ON CONFLICT (incident_id, hook, status) DO UPDATE
SET attempts = alert_deliveries.attempts + 1, last_error = excluded.last_error,
    next_try_at = now() + make_interval(
        secs => least(%(max_s)s, %(delay_s)s * 2 ^ alert_deliveries.attempts));

-- name: incident_wait
-- Not every hook took it yet: look again when the next of them is due.
UPDATE alert_incidents
SET attempts = attempts + 1, last_error = %(error)s,
    next_try_at = coalesce(
        (SELECT min(next_try_at) FROM alert_deliveries
         WHERE incident_id = %(id)s AND delivered_at IS NULL), now() + interval '5 seconds')
WHERE id = %(id)s;
