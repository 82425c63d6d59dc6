-- Delayed and retrying work by type and due time. An idle agent asks when the next task of its
-- types comes due (`next_due` in queue.sql) and sleeps until then, woken earlier by NOTIFY,
-- instead of polling the queue every few seconds. Partial: only rows waiting for their time.
CREATE INDEX tasks_scheduled_idx ON tasks (type, run_at) WHERE state = 'scheduled';
