-- Months of operation: a daily rollup that outlives pruned task rows, the once-a-day claim of
-- maintenance jobs, alert incidents, and the audit trail of operators' actions.

-- Finished tasks by day, type, host and state, written by prune before the rows go: throughput
-- history, `done today` and status totals survive retention.
CREATE TABLE task_daily (
    day     date             NOT NULL,
    type    text             NOT NULL,
    host    text             NOT NULL DEFAULT '',
    state   text             NOT NULL,
    count   bigint           NOT NULL DEFAULT 0,
    total_s double precision NOT NULL DEFAULT 0,  -- summed run time (started -> finished)
    max_s   double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (day, type, host, state)
);

-- One row per maintenance job and day: whoever inserts it runs the job (one runner fleet-wide).
CREATE TABLE maintenance_runs (
    job         text        NOT NULL,
    day         date        NOT NULL,
    runner      text        NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    result      jsonb,
    PRIMARY KEY (job, day)
);

-- An incident is open while its condition holds; it is announced once and its recovery once.
CREATE TABLE alert_incidents (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key          text        NOT NULL,          -- rule:subject, e.g. host_offline:s4-mini
    rule         text        NOT NULL,
    subject      text        NOT NULL,
    message      text        NOT NULL,
    opened_at    timestamptz NOT NULL DEFAULT now(),
    closed_at    timestamptz,
    fired_at     timestamptz,                   -- the alert delivered
    recovered_at timestamptz,                   -- the recovery delivered
    attempts     integer     NOT NULL DEFAULT 0,
    next_try_at  timestamptz NOT NULL DEFAULT now(),
    last_error   text
);
CREATE UNIQUE INDEX alert_incidents_open_idx ON alert_incidents (key) WHERE closed_at IS NULL;
CREATE INDEX alert_incidents_pending_idx ON alert_incidents (next_try_at)
    WHERE recovered_at IS NULL;
-- the media_failed rule reads failed tasks of media items every evaluation
CREATE INDEX tasks_failed_media_idx ON tasks (media_id) WHERE state = 'failed';

-- Every operator action: when, who (OS user and machine), what, on which hosts or tasks, and
-- how it ended.
CREATE TABLE audit_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text        NOT NULL,   -- user@machine
    via     text        NOT NULL,   -- cli | dashboard
    action  text        NOT NULL,
    targets jsonb       NOT NULL DEFAULT '[]'::jsonb,
    outcome text        NOT NULL,
    detail  jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
