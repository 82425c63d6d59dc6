-- The fleet's storage identity: `contentctl storage init` writes a marker with this id into the
-- storage root (the NAS); every agent checks its root holds the same marker before it takes
-- work that needs storage. One row at most.
CREATE TABLE fleet_storage (
    one         boolean     PRIMARY KEY DEFAULT true CHECK (one),
    storage_id  uuid        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
