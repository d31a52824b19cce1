-- A block range index over occurred_at: for every complete block of 256 events of a tenant's log, the earliest
-- and latest occurred_at in it. A time-range search first finds the blocks that can hold matches, then scans
-- only that rid range, instead of walking back through every newer event. Events arrive roughly in time
-- order, so the blocks of a day are few and contiguous; late events only widen the range, never hide a match.
CREATE TABLE event_blocks (
    tenant_id    INTEGER NOT NULL,
    block        INTEGER NOT NULL,   -- seqs block*256 .. block*256+255
    min_occurred INTEGER NOT NULL,
    max_occurred INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, block)
) WITHOUT ROWID;

INSERT INTO event_blocks
SELECT tenant_id, (rid & 1099511627775) / 256, min(occurred_at), max(occurred_at)
FROM events GROUP BY tenant_id, (rid & 1099511627775) / 256 HAVING count(*) = 256;

CREATE TRIGGER event_blocks_no_update BEFORE UPDATE ON event_blocks
BEGIN SELECT RAISE(ABORT, 'vigil: events are append-only'); END;
CREATE TRIGGER event_blocks_no_delete BEFORE DELETE ON event_blocks
BEGIN SELECT RAISE(ABORT, 'vigil: events are append-only'); END;
