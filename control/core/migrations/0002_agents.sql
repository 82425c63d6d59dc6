-- Agents: commands from operators, recent log lines, and per-day counters for daily limits.

CREATE TABLE agent_commands (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host       text        NOT NULL,
    command    text        NOT NULL CHECK (command IN ('drain', 'undrain', 'restart', 'stop')),
    args       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    acked_at   timestamptz,
    done_at    timestamptz,
    -- what the agent did with it: applied, or why not (superseded, stale...)
    outcome    text
);
CREATE INDEX agent_commands_pending_idx ON agent_commands (host, id) WHERE acked_at IS NULL;

-- Recent agent log lines, bounded per host (the agent prunes its own), for `contentctl logs`
-- and the dashboard. The full history is the agent's own JSON-lines file.
CREATE TABLE agent_logs (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host    text        NOT NULL,
    ts      timestamptz NOT NULL,
    level   text        NOT NULL,
    logger  text        NOT NULL,
    message text        NOT NULL,
    task_id bigint,
    extra   jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX agent_logs_host_idx ON agent_logs (host, id);

-- Tasks claimed per host, type and (host-local) day: daily limits survive restarts.
CREATE TABLE host_daily_counts (
    host  text    NOT NULL,
    type  text    NOT NULL,
    day   date    NOT NULL,
    count integer NOT NULL DEFAULT 0,
    PRIMARY KEY (host, type, day)
);

ALTER TABLE hosts ADD COLUMN drain_requested boolean NOT NULL DEFAULT false;

-- Liveness is ephemeral, so it lives in an UNLOGGED table: heartbeats write no WAL (200 agents
-- every 5 s would otherwise log gigabytes a day) and commit cheaply. After a server crash the
-- table comes back empty and every agent refills its row within one heartbeat.
CREATE UNLOGGED TABLE host_beats (
    name              text PRIMARY KEY,
    agent_state       text        NOT NULL,
    last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
    heartbeat         jsonb       NOT NULL DEFAULT '{}'::jsonb
);
ALTER TABLE hosts DROP COLUMN agent_state, DROP COLUMN last_heartbeat_at, DROP COLUMN heartbeat;
