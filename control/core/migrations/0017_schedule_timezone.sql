-- A cron schedule's time zone: `0 3 * * *` is 03:00 in this zone (IANA name), across daylight
-- saving changes. Schedules made before run in UTC, as they always did.
ALTER TABLE schedules ADD COLUMN timezone text NOT NULL DEFAULT 'UTC';

DROP FUNCTION contentctl_schedules_due(timestamptz);
CREATE FUNCTION contentctl_schedules_due(at timestamptz)
RETURNS TABLE (name text, task_type text, cron text, every_s double precision,
               next_run_at timestamptz, timezone text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT s.name, s.task_type, s.cron, s.every_s, s.next_run_at, s.timezone FROM schedules AS s
    WHERE NOT s.paused AND s.next_run_at <= at ORDER BY s.next_run_at
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'contentctl_agent') THEN
        REVOKE EXECUTE ON FUNCTION contentctl_schedules_due(timestamptz) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION contentctl_schedules_due(timestamptz) TO contentctl_agent;
    END IF;
END
$$;
