-- Alerts delivered per webhook. Before, an incident was sent to every hook in turn, and one
-- hook failing sent it again to all of them; incidents went one at a time, each hook with a 10 s
-- timeout, so a dead hook held every later incident back. Now each (incident, hook, status)
-- has its own delivery with its own backoff; an incident is fired (or recovered) once every
-- configured hook took it. `hook` is a digest of the hook's URL (which may carry a token).
CREATE TABLE alert_deliveries (
    incident_id  bigint      NOT NULL REFERENCES alert_incidents (id) ON DELETE CASCADE,
    hook         text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    attempts     integer     NOT NULL DEFAULT 0,
    next_try_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    last_error   text,
    PRIMARY KEY (incident_id, hook, status)
);
