-- The task queue, the hosts that pull from it, and the rollup that keeps status cheap.

CREATE TABLE tasks (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type                text        NOT NULL,
    payload             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    priority            integer     NOT NULL DEFAULT 0,
    -- queued: claimable now; scheduled: run_at in the future (delayed or waiting for a retry).
    -- A scheduled task whose run_at has passed is claimable and reads as queued.
    state               text        NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled')),
    run_at              timestamptz NOT NULL DEFAULT now(),
    attempts            integer     NOT NULL DEFAULT 0,
    max_attempts        integer     NOT NULL DEFAULT 4 CHECK (max_attempts >= 1),
    timeout_s           double precision,
    unique_key          text,
    host                text,
    lease_expires_at    timestamptz,
    attempt_token       uuid,
    progress            real,
    progress_stage      text,
    progress_at         timestamptz,
    cancel_requested_at timestamptz,
    result              jsonb,
    error_type          text,
    error_message       text,
    error_traceback     text,
    media_id            bigint,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- The claim path: pending work in claim order. Partial, so finished rows cost it nothing.
CREATE INDEX tasks_claimable_idx ON tasks (priority DESC, run_at, id)
    WHERE state IN ('queued', 'scheduled');
-- Running work by lease: expired leases are claimable again; heartbeats renew by token.
CREATE INDEX tasks_running_idx ON tasks (lease_expires_at) WHERE state = 'running';
-- Finished work by time: the live tail of the status rollup.
CREATE INDEX tasks_finished_idx ON tasks (finished_at) WHERE finished_at IS NOT NULL;
-- A unique key is unique among live tasks only: once finished, the key can be enqueued again.
CREATE UNIQUE INDEX tasks_unique_key_idx ON tasks (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('queued', 'scheduled', 'running');
CREATE INDEX tasks_media_idx ON tasks (media_id) WHERE media_id IS NOT NULL;

-- Finished tasks (succeeded, failed, cancelled) with finished_at before the watermark, counted.
-- status = this + a count of the rows after the watermark + a count of the live states.
CREATE TABLE task_stats (
    type  text   NOT NULL,
    state text   NOT NULL,
    count bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (type, state)
);
CREATE TABLE task_stats_meta (
    only_row  boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    watermark timestamptz NOT NULL DEFAULT 'epoch'
);
INSERT INTO task_stats_meta DEFAULT VALUES;

CREATE TABLE hosts (
    name              text PRIMARY KEY,
    address           text,
    -- what the agent says it is doing: online, draining, drained, stopped
    agent_state       text        NOT NULL DEFAULT 'online',
    agent_version     text,
    code_hash         text,
    pid               integer,
    started_at        timestamptz,
    last_heartbeat_at timestamptz,
    enabled_tasks     text[]      NOT NULL DEFAULT '{}',
    declared          boolean     NOT NULL DEFAULT true,
    -- load, counters, idle_reason: whatever the last heartbeat carried
    heartbeat         jsonb       NOT NULL DEFAULT '{}'::jsonb
);
