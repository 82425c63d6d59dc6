-- Least privilege that holds (after a probe of 0007's rules as an agent role).
--
-- 0007 let every agent role `SET ROLE contentctl_agent`, and under the group role the policies'
-- `contentctl_agent_host() IS NULL OR ...` let everything through; as its own role an agent could
-- still cancel or rewrite another host's running task, insert tasks of made-up types, read and
-- repoint every source, read a schedule's payload and write any item's outputs.
--
-- Now an agent may touch only what it holds:
--   * tasks: the claimable ones (queued or due, or a running one whose lease ran out: taking
--     them is what a claim is) and its own running ones, and only the columns a claim, a
--     progress report, a renewal, a completion, a failure or a hand-back write. Never another
--     host's live attempt, never a task's type, payload, priority, limits or cancel flag.
--   * inserts of tasks: of declared types only (`task_types`), fresh, and for a media item it
--     holds (a stage's follow-up, or the item a poll it holds just found).
--   * media items and sources: those it holds a task of (read and write); the poll's
--     bookkeeping columns of a source, never its URL.
--   * its own host's rows (beat, counters, logs, commands), whatever role it sets.
--   * everything else through SECURITY DEFINER functions with narrow arguments: the fleet's
--     sweep of dead sessions' leases, the schedules' tick, a poll's validators.
-- Identity is the session's login role (`session_user`), which SET ROLE does not change; and
-- the group role can no longer be set by its members (PostgreSQL 16+: membership WITH SET
-- FALSE). The policies apply TO the group, so any other role without BYPASSRLS sees nothing.

-- Who is asking: `agent_<host>` -> host, from the login role (NULL for anyone else).
CREATE OR REPLACE FUNCTION contentctl_agent_host() RETURNS text
LANGUAGE sql STABLE
RETURN CASE WHEN session_user LIKE 'agent\_%' THEN substr(session_user, 7) END;

-- The task types the fleet knows: the code's (written at every migrate) and those an operator
-- declares. An agent may insert tasks of these types only.
CREATE TABLE task_types (
    name        text PRIMARY KEY,
    declared_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO task_types (name) VALUES
    ('download_youtube'), ('download_podcast'), ('extract_audio'), ('transcribe'),
    ('stitch'), ('translate'), ('poll_source'), ('noop'), ('sleep'), ('fail')
ON CONFLICT DO NOTHING;

-- Does the calling agent hold this media item: a task of it running on its host, or finished
-- by it in this very transaction (a completion advancing its item), or a poll of the item's
-- source likewise (the items a poll just found)?
CREATE FUNCTION contentctl_holds_media(item bigint) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT EXISTS (
        SELECT 1 FROM tasks
        WHERE media_id = item AND host = contentctl_agent_host()
          AND (state = 'running' OR finished_at = now())
    ) OR EXISTS (
        SELECT 1 FROM media_items AS m
        JOIN tasks AS p
          ON p.type = 'poll_source' AND (p.payload ->> 'source_id')::bigint = m.source_id
        WHERE m.id = item AND p.host = contentctl_agent_host()
          AND (p.state = 'running' OR p.finished_at = now())
    )
$$;

-- Does the calling agent hold a poll of this source (running, or finished in this transaction)?
CREATE FUNCTION contentctl_holds_source(source bigint) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT EXISTS (
        SELECT 1 FROM tasks
        WHERE type = 'poll_source' AND (payload ->> 'source_id')::bigint = source
          AND host = contentctl_agent_host() AND (state = 'running' OR finished_at = now())
    )
$$;

-- The fleet's look for leases of ended sessions (queue.sql's `lapse` before), taken in turns.
CREATE FUNCTION contentctl_lapse(turn_s double precision)
RETURNS TABLE (id bigint, type text, host text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    WITH turn AS (
        UPDATE fleet_sweep SET swept_at = now()
        WHERE swept_at <= now() - make_interval(secs => turn_s)
          AND set_config('synchronous_commit', 'off', true) IS NOT NULL
        RETURNING 1
    )
    UPDATE tasks AS t SET lease_expires_at = now() - interval '1 microsecond'
    WHERE EXISTS (SELECT 1 FROM turn)
      AND t.state = 'running' AND t.lease_expires_at >= now()
      AND t.lease_session IS NOT NULL AND t.started_at > pg_postmaster_start_time()
      AND t.lease_session NOT IN (SELECT contentctl_live_sessions())
    RETURNING t.id, t.type, t.host
$$;

-- Expired leases that must not run again (queue.sql's `sweep_expired` before).
CREATE FUNCTION contentctl_sweep_expired()
RETURNS TABLE (id bigint, state text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    UPDATE tasks AS t
    SET state = CASE WHEN t.cancel_requested_at IS NOT NULL THEN 'cancelled' ELSE 'failed' END,
        error_type = CASE WHEN t.cancel_requested_at IS NOT NULL THEN t.error_type
                          ELSE 'LeaseExpired' END,
        error_message = CASE WHEN t.cancel_requested_at IS NOT NULL THEN t.error_message
            ELSE 'lease expired on host ' || coalesce(t.host, '?') || ' after ' || t.attempts
                 || ' attempts' END,
        finished_at = now(), lease_expires_at = NULL, updated_at = now()
    WHERE t.state = 'running' AND t.lease_expires_at < now()
      AND (t.cancel_requested_at IS NOT NULL OR t.attempts >= t.max_attempts)
    RETURNING t.id, t.state
$$;

-- The schedules that are due, without their payloads (which may hold API keys).
CREATE FUNCTION contentctl_schedules_due(at timestamptz)
RETURNS TABLE (name text, task_type text, cron text, every_s double precision,
               next_run_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT s.name, s.task_type, s.cron, s.every_s, s.next_run_at FROM schedules AS s
    WHERE NOT s.paused AND s.next_run_at <= at ORDER BY s.next_run_at
$$;

-- One tick of one schedule, once fleet-wide: the compare-and-set on its due time, its task
-- (type and payload from the schedule, never from the caller; the type's attempts and time
-- limit from the caller's policy), announced. NULL when another process took this tick (or
-- the task's key is still live).
CREATE FUNCTION contentctl_schedule_fire(
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
        PERFORM pg_notify('contentctl_tasks', s.task_type);
    END IF;
    RETURN made;
END
$$;

-- A poll's new validators (ETag, Last-Modified) into its source's schedule, so the next poll
-- asks conditionally: only by the agent that holds a poll of that source (or the head).
CREATE FUNCTION contentctl_poll_validators(
    source bigint, etag text, last_modified text
) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    UPDATE schedules AS c
    SET payload = c.payload || jsonb_build_object('etag', etag, 'last_modified', last_modified)
    FROM sources AS s
    WHERE s.id = source AND c.name = 'source:' || s.name
      AND (contentctl_agent_host() IS NULL OR contentctl_holds_source(source))
$$;

DO $$
DECLARE
    member record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'contentctl_agent') THEN
        RAISE NOTICE 'contentctl: no agents group role: agent rights are left to the operator';
        RETURN;
    END IF;
    ALTER ROLE contentctl_agent NOLOGIN NOINHERIT;
    -- Members keep the group's rights but may no longer become it (PostgreSQL 16+).
    IF current_setting('server_version_num')::int >= 160000 THEN
        FOR member IN
            SELECT r.rolname FROM pg_auth_members AS m
            JOIN pg_roles AS g ON g.oid = m.roleid AND g.rolname = 'contentctl_agent'
            JOIN pg_roles AS r ON r.oid = m.member
        LOOP
            EXECUTE format('REVOKE contentctl_agent FROM %I', member.rolname);
            EXECUTE format('GRANT contentctl_agent TO %I WITH INHERIT TRUE, SET FALSE',
                           member.rolname);
        END LOOP;
    END IF;

    -- Start from nothing, then grant what the agent's work needs.
    EXECUTE 'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM contentctl_agent';
    EXECUTE 'REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM contentctl_agent';

    GRANT SELECT ON contentctl_schema, task_types, fleet_storage TO contentctl_agent;
    GRANT SELECT (swept_at) ON fleet_sweep TO contentctl_agent;
    -- the beat asks whether a schedule is due: the times, never the payloads
    GRANT SELECT (name, next_run_at, paused) ON schedules TO contentctl_agent;

    GRANT SELECT ON tasks TO contentctl_agent;
    GRANT INSERT (type, payload, priority, state, run_at, max_attempts, timeout_s, unique_key,
                  media_id)
        ON tasks TO contentctl_agent;
    GRANT UPDATE (state, host, attempts, attempt_token, lease_expires_at, lease_session,
                  run_at, started_at, finished_at, progress, progress_stage, progress_at,
                  result, error_type, error_message, error_traceback, updated_at)
        ON tasks TO contentctl_agent;

    GRANT SELECT ON media_items TO contentctl_agent;
    GRANT INSERT (kind, source, unique_key, feed_url, title, channel, duration_s, upload_date,
                  metadata, options, source_id)
        ON media_items TO contentctl_agent;
    GRANT UPDATE (title, channel, duration_s, upload_date, metadata, outputs, updated_at)
        ON media_items TO contentctl_agent;

    GRANT SELECT ON sources TO contentctl_agent;
    GRANT UPDATE (polls, last_polled_at, last_error, etag, last_modified, items_found, options)
        ON sources TO contentctl_agent;

    GRANT SELECT, INSERT (name, address, agent_version, code_hash, pid, started_at,
                          enabled_tasks, declared)
        ON hosts TO contentctl_agent;
    GRANT UPDATE (address, agent_version, code_hash, pid, started_at, enabled_tasks, declared)
        ON hosts TO contentctl_agent;
    GRANT SELECT, INSERT, UPDATE ON host_beats, host_daily_counts TO contentctl_agent;
    GRANT SELECT, UPDATE (acked_at, done_at, outcome) ON agent_commands TO contentctl_agent;
    GRANT SELECT, INSERT, DELETE ON agent_logs TO contentctl_agent;
    GRANT USAGE ON SEQUENCE agent_logs_id_seq, media_items_id_seq, tasks_id_seq
        TO contentctl_agent;

    -- Functions: none for PUBLIC; the agents' by name.
    EXECUTE 'REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC';
    ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION
        contentctl_agent_host(), contentctl_live_sessions(),
        contentctl_shown_state(text, timestamptz),
        contentctl_holds_media(bigint), contentctl_holds_source(bigint),
        contentctl_lapse(double precision), contentctl_sweep_expired(),
        contentctl_schedules_due(timestamptz),
        contentctl_schedule_fire(text, timestamptz, timestamptz, integer, double precision),
        contentctl_poll_validators(bigint, text, text)
        TO contentctl_agent;
END
$$;

-- Row-level security: policies for the agents' group only (the owner is not subject to them;
-- any other role without BYPASSRLS sees nothing). 0007's policies let a NULL host through.
DROP POLICY own_host ON hosts;
DROP POLICY own_beat ON host_beats;
DROP POLICY own_counts ON host_daily_counts;
DROP POLICY own_logs ON agent_logs;
DROP POLICY own_commands ON agent_commands;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'contentctl_agent') THEN
        RETURN;
    END IF;
    CREATE POLICY agent_own ON hosts TO contentctl_agent
        USING (name = contentctl_agent_host()) WITH CHECK (name = contentctl_agent_host());
    CREATE POLICY agent_own ON host_beats TO contentctl_agent
        USING (name = contentctl_agent_host()) WITH CHECK (name = contentctl_agent_host());
    CREATE POLICY agent_own ON host_daily_counts TO contentctl_agent
        USING (host = contentctl_agent_host()) WITH CHECK (host = contentctl_agent_host());
    CREATE POLICY agent_own ON agent_logs TO contentctl_agent
        USING (host = contentctl_agent_host()) WITH CHECK (host = contentctl_agent_host());
    CREATE POLICY agent_own ON agent_commands TO contentctl_agent
        USING (host = contentctl_agent_host());

    -- tasks: every agent reads the queue (claims, a stitch reads its chunks' results)
    CREATE POLICY agent_read ON tasks FOR SELECT TO contentctl_agent USING (true);
    -- a claim takes what is claimable; afterwards an agent writes only its own attempts
    CREATE POLICY agent_hold ON tasks FOR UPDATE TO contentctl_agent
        USING ((state IN ('queued', 'scheduled') AND run_at <= now())
               OR (state = 'running'
                   AND (host = contentctl_agent_host() OR lease_expires_at < now())))
        WITH CHECK (host = contentctl_agent_host()
                    OR (host IS NULL AND state IN ('queued', 'cancelled')));
    CREATE POLICY agent_insert ON tasks FOR INSERT TO contentctl_agent
        WITH CHECK (EXISTS (SELECT 1 FROM task_types AS k WHERE k.name = type)
                    AND media_id IS NOT NULL AND contentctl_holds_media(media_id));
    ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;

    CREATE POLICY agent_read ON media_items FOR SELECT TO contentctl_agent USING (true);
    CREATE POLICY agent_hold ON media_items FOR UPDATE TO contentctl_agent
        USING (contentctl_holds_media(id));
    CREATE POLICY agent_insert ON media_items FOR INSERT TO contentctl_agent
        WITH CHECK (source_id IS NOT NULL AND contentctl_holds_source(source_id));
    ALTER TABLE media_items ENABLE ROW LEVEL SECURITY;

    CREATE POLICY agent_hold ON sources TO contentctl_agent
        USING (contentctl_holds_source(id));
    ALTER TABLE sources ENABLE ROW LEVEL SECURITY;
END
$$;
