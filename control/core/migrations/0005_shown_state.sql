-- What the operator sees as a task's state, defined once: a scheduled task whose time has come
-- is claimable, so it reads (and filters) as queued. The CLI's and the dashboard's task lists
-- filter with it; the planner inlines it (a plain SQL expression).
CREATE FUNCTION contentctl_shown_state(state text, run_at timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN CASE WHEN state = 'scheduled' AND run_at <= now() THEN 'queued' ELSE state END;
