-- Liveness from the agent's database session. Each agent connection holds a session-level
-- advisory lock (classid 1668049782, "clkv", and a key of its own); the lock lives exactly as long
-- as the session: the server drops it when the agent exits or is killed (the socket closes) or
-- when TCP keepalives find its machine gone. So an agent need not write to say it is alive:
-- its beat is written when what it reports changes and as a touch once a minute, and its tasks'
-- leases are renewed once a minute. A lease whose session is gone runs out at once (`lapse` in
-- queue.sql), so a dead agent's work is taken over in seconds, not when its lease time ends.
-- Both columns are NULL for writers without a session key (older agents, tools): time only.
ALTER TABLE host_beats ADD COLUMN session_key integer;
ALTER TABLE tasks ADD COLUMN lease_session integer;

-- The session keys held right now (pg_locks is readable by every role).
CREATE FUNCTION contentctl_live_sessions() RETURNS SETOF integer
LANGUAGE sql STABLE AS $$
    SELECT objid::bigint::integer FROM pg_locks
    WHERE locktype = 'advisory' AND classid = 1668049782::oid AND objsubid = 2 AND granted
$$;
