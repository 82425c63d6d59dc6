-- Recurring work: a schedule enqueues one task per tick, fleet-wide. Whoever notices a due
-- tick first (any agent or head process) moves next_run_at on with a compare-and-set and
-- enqueues the task under the unique key schedule:NAME:TICK in the same transaction, so a tick
-- is never run twice; a fleet that was down runs a missed schedule once, then goes on from now.
CREATE TABLE schedules (
    name          text PRIMARY KEY,
    task_type     text NOT NULL,
    payload       jsonb NOT NULL DEFAULT '{}'::jsonb,
    cron          text,
    every_s       double precision CHECK (every_s IS NULL OR every_s > 0),
    next_run_at   timestamptz NOT NULL,
    paused        boolean NOT NULL DEFAULT false,
    last_run_at   timestamptz,
    last_task_id  bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((cron IS NULL) <> (every_s IS NULL))
);
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE NOT paused;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'contentctl_agent') THEN
        GRANT SELECT, UPDATE ON schedules TO contentctl_agent;  -- agents tick schedules
    END IF;
END
$$;
