-- Media items: one video or podcast episode (or a local file) and its way through the pipeline.
-- Stage states are not stored here: they are read from the item's tasks of the current
-- generation (a retry from a stage starts a new generation; late answers of the old one are
-- recorded on their task but no longer advance the item).

CREATE TABLE media_items (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('youtube', 'podcast', 'file')),
    source      text        NOT NULL,
    -- de-duplication: the video URL, or the feed URL + episode guid
    unique_key  text        UNIQUE,
    feed_url    text,
    title       text,
    channel     text,
    duration_s  double precision,
    upload_date text,
    metadata    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- what the item was added with: langs, chunk_s, overlap_s, priority
    options     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    generation  integer     NOT NULL DEFAULT 1,
    -- paths relative to the storage root: source, audio, transcript_json, srt, vtt, txt,
    -- translations {lang: {json, srt, vtt, txt}}
    outputs     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
