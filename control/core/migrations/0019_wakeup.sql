-- One agent answers an announcement, not every idle agent (agent/wakeup.py).
--
-- Every agent LISTENs on one channel, so each enqueue woke every idle agent and each ran a
-- claim: one task into 100 idle agents cost 100 claims, 99 of them empty. Announcements now say
-- which transaction made how many tasks of which types (`t XID N TYPES`); each agent ranks
-- itself among its capable peers by a hash of the announcement and claims at once only when
-- it is among the first N, the others a step later each unless a claim says, with its
-- snapshot, that nothing of those types is left (`c SNAPSHOT TYPES`).

-- An agent's peers: the hosts whose agent's session is alive, with the types each runs. An
-- agent sees only its own host's rows (row-level security, 0015); this is all it learns of the
-- others: their names and types, asked about once a minute on its heartbeat.
CREATE FUNCTION contentctl_peers() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT coalesce(jsonb_object_agg(h.name, to_jsonb(h.enabled_tasks)), '{}'::jsonb)
    FROM hosts AS h
    JOIN host_beats AS b USING (name)
    WHERE b.session_key IN (SELECT contentctl_live_sessions())
      AND b.agent_state = 'online'
$$;
REVOKE EXECUTE ON FUNCTION contentctl_peers() FROM PUBLIC;

-- A schedule's task, announced as every other way a task becomes claimable is.
CREATE OR REPLACE FUNCTION contentctl_schedule_fire(
    schedule text, due timestamptz, next timestamptz, max_attempts integer,
    timeout_s double precision
) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
DECLARE
    s schedules%ROWTYPE;
    made bigint;
BEGIN
    UPDATE schedules SET next_run_at = next, last_run_at = due
    WHERE name = schedule AND next_run_at = due AND NOT paused
    RETURNING * INTO s;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO tasks (type, payload, max_attempts, timeout_s, unique_key)
    VALUES (s.task_type, s.payload, max_attempts, timeout_s,
            'schedule:' || s.name || ':'
            || to_char(due AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))
    ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL
        AND state IN ('queued', 'scheduled', 'running') DO NOTHING
    RETURNING id INTO made;
    IF made IS NOT NULL THEN
        UPDATE schedules SET last_task_id = made WHERE name = schedule;
        PERFORM pg_notify('contentctl_tasks',
                          't ' || pg_current_xact_id()::text || ' 1 ' || s.task_type);
    END IF;
    RETURN made;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'contentctl_agent') THEN
        GRANT EXECUTE ON FUNCTION contentctl_peers() TO contentctl_agent;
    END IF;
END
$$;
