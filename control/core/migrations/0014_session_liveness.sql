-- Liveness from the agent's database session. Each agent connection holds a session-level
-- advisory lock (classid 1668049782, "clkv", and a key of its own); the lock lives exactly as long
-- as the session: the server drops it when the agent exits or is killed (the socket closes) or
-- when TCP keepalives find its machine gone. So an agent need not write to say it is alive:
-- its beat is written when what it reports changes and as a touch once a minute, and its tasks'
-- leases are renewed once a minute. A lease whose session is gone runs out at the next sweep
-- (`lapse` in queue.sql), so a dead agent's work is taken over in seconds, not when its lease
-- time ends.
-- Both columns are NULL for writers without a session key (older agents, tools): time only.
ALTER TABLE host_beats ADD COLUMN session_key integer;
ALTER TABLE tasks ADD COLUMN lease_session integer;

-- The session keys held right now (pg_locks is readable by every role).
CREATE FUNCTION contentctl_live_sessions() RETURNS SETOF integer
LANGUAGE sql STABLE AS $$
    SELECT objid::bigint::integer FROM pg_locks
    WHERE locktype = 'advisory' AND classid = 1668049782::oid AND objsubid = 2 AND granted
$$;

-- When an agent last looked for leases of ended sessions. The look reads every running task and
-- the lock table, so the fleet takes it in turns: a beat's answer says when the turn is free
-- (older than a few seconds), and of the agents that try, one UPDATE wins it (`lapse`). Every
-- agent looking at every beat made the fleet's cost grow with the square of its size.
CREATE TABLE fleet_sweep (
    one      boolean     PRIMARY KEY DEFAULT true CHECK (one),
    swept_at timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO fleet_sweep DEFAULT VALUES;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'contentctl_agent') THEN
        GRANT SELECT, UPDATE ON fleet_sweep TO contentctl_agent;
    END IF;
END
$$;
