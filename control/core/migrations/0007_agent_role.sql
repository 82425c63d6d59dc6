-- Least privilege for agents. `contentctl_agent` is the group every agent's login role belongs
-- to (`agent_<host>`, created per host by provisioning): it may claim, progress, complete and
-- fail tasks, enqueue a stage's follow-up, beat, ship logs and read its own commands, and
-- nothing else: no DELETE on tasks, no writes to the schema table or the rollups, no commands
-- to anyone. Row-level security keeps a host's rows (heartbeat, counters, logs, commands) its
-- own. The operator's role owns the tables and is not subject to any of it.
-- On an external server whose migrating role may not create roles, this does nothing.
DO $$
DECLARE
    may_create boolean;
BEGIN
    SELECT rolsuper OR rolcreaterole INTO may_create FROM pg_roles WHERE rolname = current_user;
    IF NOT may_create THEN
        RAISE NOTICE 'contentctl: no CREATEROLE: agent roles are left to the operator';
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'contentctl_agent') THEN
        CREATE ROLE contentctl_agent NOLOGIN NOINHERIT;
    END IF;
    GRANT SELECT, INSERT, UPDATE ON tasks TO contentctl_agent;
    GRANT SELECT ON contentctl_schema, task_stats, task_stats_meta, fleet_storage
        TO contentctl_agent;
    GRANT SELECT, INSERT, UPDATE ON hosts, host_beats, host_daily_counts TO contentctl_agent;
    GRANT SELECT, UPDATE ON agent_commands TO contentctl_agent;
    GRANT SELECT, INSERT, DELETE ON agent_logs TO contentctl_agent;
    GRANT SELECT, UPDATE ON media_items TO contentctl_agent;
END
$$;

-- The host an agent role speaks for: `agent_<host>` -> host; NULL for any other role (the
-- legacy shared agent role of earlier `db serve`s, the operator).
CREATE FUNCTION contentctl_agent_host() RETURNS text
LANGUAGE sql STABLE
RETURN CASE WHEN current_user LIKE 'agent\_%' THEN substr(current_user, 7) END;

ALTER TABLE hosts ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_host ON hosts
    USING (contentctl_agent_host() IS NULL OR name = contentctl_agent_host())
    WITH CHECK (contentctl_agent_host() IS NULL OR name = contentctl_agent_host());
ALTER TABLE host_beats ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_beat ON host_beats
    USING (contentctl_agent_host() IS NULL OR name = contentctl_agent_host())
    WITH CHECK (contentctl_agent_host() IS NULL OR name = contentctl_agent_host());
ALTER TABLE host_daily_counts ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_counts ON host_daily_counts
    USING (contentctl_agent_host() IS NULL OR host = contentctl_agent_host())
    WITH CHECK (contentctl_agent_host() IS NULL OR host = contentctl_agent_host());
ALTER TABLE agent_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_logs ON agent_logs
    USING (contentctl_agent_host() IS NULL OR host = contentctl_agent_host())
    WITH CHECK (contentctl_agent_host() IS NULL OR host = contentctl_agent_host());
ALTER TABLE agent_commands ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_commands ON agent_commands
    USING (contentctl_agent_host() IS NULL OR host = contentctl_agent_host());
