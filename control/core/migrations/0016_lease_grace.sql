-- Leases that survive a network blip shorter than their time.
--
-- 0014 let a lease run out at the next sweep turn once its agent's database session was gone.
-- A session ends at the server ~20 s into a partition (TCP keepalives), so a head reboot, a
-- switch blip or a Wi-Fi drop of more than ~20 s handed every running task to another agent,
-- and the first agent's finished work was refused when its link came back: the task ran twice.
--
-- A session that ended is evidence, not proof, that its agent is gone. Now the first sweep that
-- sees a lease's session gone marks the lease orphaned (`lease_orphaned_at`) and the lease runs
-- out only when it has been orphaned for a grace (the sweeping agent's `grace_s`, 90 s by
-- default): long enough for an agent whose link came back to reconnect and put its new session
-- key on its leases (a renewal clears the mark), short enough that a dead host's work runs
-- elsewhere within about two minutes of its death (keepalives ~20 s + a sweep turn + grace).
ALTER TABLE tasks ADD COLUMN lease_orphaned_at timestamptz;

DROP FUNCTION contentctl_lapse(double precision);
CREATE FUNCTION contentctl_lapse(turn_s double precision, grace_s double precision)
RETURNS TABLE (id bigint, type text, host text, lapsed boolean)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    WITH turn AS (
        UPDATE fleet_sweep SET swept_at = now()
        WHERE swept_at <= now() - make_interval(secs => turn_s)
          AND set_config('synchronous_commit', 'off', true) IS NOT NULL
        RETURNING 1
    ), looked AS (
        -- orphaned now: marked; orphaned for the grace: run out (one write each, not one per turn)
        UPDATE tasks AS t
        SET lease_orphaned_at = coalesce(t.lease_orphaned_at, now()),
            lease_expires_at = CASE WHEN coalesce(t.lease_orphaned_at, now())
                                         <= now() - make_interval(secs => grace_s)
                                    THEN now() - interval '1 microsecond'
                                    ELSE t.lease_expires_at END
        WHERE EXISTS (SELECT 1 FROM turn)
          AND t.state = 'running' AND t.lease_expires_at >= now()
          AND t.lease_session IS NOT NULL AND t.started_at > pg_postmaster_start_time()
          AND (t.lease_orphaned_at IS NULL
               OR t.lease_orphaned_at <= now() - make_interval(secs => grace_s))
          AND t.lease_session NOT IN (SELECT contentctl_live_sessions())
        RETURNING t.id, t.type, t.host, t.lease_expires_at
    )
    -- lapsed: runs out now; else marked orphaned just now (the caller looks again after grace)
    SELECT looked.id, looked.type, looked.host, looked.lease_expires_at < now() FROM looked
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'contentctl_agent') THEN
        REVOKE EXECUTE ON FUNCTION contentctl_lapse(double precision, double precision)
            FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION contentctl_lapse(double precision, double precision)
            TO contentctl_agent;
        -- a renewal (and a claim) clears the mark: the agent is back, or another one holds it
        GRANT UPDATE (lease_orphaned_at) ON tasks TO contentctl_agent;
    END IF;
END
$$;
