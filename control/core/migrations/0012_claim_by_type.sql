-- Pending work of one type in claim order. A claim with a worker limit takes a capped type's
-- tasks through this index: without it, a capped type with no pending work made every claim
-- walk the whole pending backlog of the other types (9,900 index entries for 10,000 tasks) to
-- find none. Partial like tasks_claimable_idx: finished rows cost it nothing.
CREATE INDEX tasks_claimable_type_idx ON tasks (type, priority DESC, run_at, id)
    WHERE state IN ('queued', 'scheduled');
