-- Metrics (control.head.metrics): a few indexed queries per scrape.

-- name: metrics_depth
SELECT type, state, count(*) AS n FROM tasks
WHERE state IN ('queued', 'scheduled', 'running')
GROUP BY type, state;

-- name: metrics_oldest
SELECT type, extract(epoch FROM now() - min(run_at)) AS age_s FROM tasks
WHERE state = 'queued' AND run_at <= now()
GROUP BY type;

-- name: metrics_finished_since
SELECT type, coalesce(host, '') AS host, state,
       extract(epoch FROM finished_at - coalesce(started_at, finished_at)) AS run_s
FROM tasks
WHERE finished_at > %(after)s AND finished_at <= %(until)s;
