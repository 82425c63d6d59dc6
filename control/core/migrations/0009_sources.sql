-- Sources: podcast feeds polled on a schedule (poll_source tasks); each new episode becomes
-- a media item exactly once (unique key: feed URL + guid), keeping the entry's metadata.
CREATE TABLE sources (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    url             text NOT NULL UNIQUE,
    kind            text NOT NULL CHECK (kind IN ('podcast')),
    options         jsonb NOT NULL DEFAULT '{}'::jsonb,  -- langs, priority, latest
    etag            text,
    last_modified   text,
    polls           integer NOT NULL DEFAULT 0,
    items_found     integer NOT NULL DEFAULT 0,
    last_polled_at  timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE media_items ADD COLUMN source_id bigint REFERENCES sources (id) ON DELETE SET NULL;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'contentctl_agent') THEN
        GRANT SELECT, UPDATE ON sources TO contentctl_agent;  -- a poll records what it found
        GRANT INSERT ON media_items TO contentctl_agent;      -- and the new episodes
    END IF;
END
$$;
