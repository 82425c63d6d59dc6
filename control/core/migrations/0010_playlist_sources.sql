-- Channels and playlists as sources (yt-dlp flat extraction), and a source's last poll and
-- error read from its poll tasks (so a poll that finds nothing new writes nothing to sources).
ALTER TABLE sources DROP CONSTRAINT sources_kind_check;
ALTER TABLE sources ADD CONSTRAINT sources_kind_check CHECK (kind IN ('podcast', 'playlist'));
CREATE INDEX tasks_poll_source_idx ON tasks (((payload ->> 'source_id')::bigint), id DESC)
    WHERE type = 'poll_source';
