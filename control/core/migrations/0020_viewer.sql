-- A role that reads what the dashboard shows and writes nothing: a read-only dashboard session
-- (`contentctl web --read-only`) runs as it (SET ROLE right after connecting), so even a
-- dashboard bug cannot drain, cancel or retry anything. It reads every table; row-level
-- security lets it see every row (a SELECT policy on each table that has any); it may call the
-- functions that cannot write (STABLE or IMMUTABLE: the server refuses a write inside them),
-- never the sweeps and fires (VOLATILE, SECURITY DEFINER). Later tables
-- are granted by default privileges; a later table with row-level security needs its own
-- `viewer_reads` policy. On an external server whose migrating role may not create roles,
-- this does nothing and read-only sessions say so.
DO $$
DECLARE
    may_create boolean;
    t record;
BEGIN
    SELECT rolsuper OR rolcreaterole INTO may_create FROM pg_roles WHERE rolname = current_user;
    IF NOT may_create THEN
        RAISE NOTICE 'contentctl: no CREATEROLE: no viewer role for read-only dashboards';
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'contentctl_viewer') THEN
        CREATE ROLE contentctl_viewer NOLOGIN NOINHERIT;
    END IF;
    GRANT USAGE ON SCHEMA public TO contentctl_viewer;
    GRANT SELECT ON ALL TABLES IN SCHEMA public TO contentctl_viewer;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO contentctl_viewer;
    FOR t IN
        SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relrowsecurity
    LOOP
        EXECUTE format(
            'CREATE POLICY viewer_reads ON %I FOR SELECT TO contentctl_viewer USING (true)',
            t.relname
        );
    END LOOP;
    FOR t IN
        SELECT p.oid::regprocedure AS fn FROM pg_proc AS p
        JOIN pg_namespace AS n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.provolatile IN ('s', 'i') AND p.prokind = 'f'
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO contentctl_viewer', t.fn);
    END LOOP;
    -- the operator's role may become it (a superuser may anyway)
    EXECUTE format('GRANT contentctl_viewer TO %I', current_user);
END
$$;
