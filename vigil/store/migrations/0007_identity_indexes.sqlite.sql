-- Indexes of the identity columns (made after the backfill of 0006, which is faster without them). Partial: an
-- event without an address or a name costs them nothing. Like every index here each ends, implicitly, with
-- rid, so equality on it yields rows in log order inside any key range.
CREATE INDEX events_ip ON events (tenant_id, ip) WHERE ip IS NOT NULL;
CREATE INDEX events_actor_name ON events (tenant_id, actor_name) WHERE actor_name IS NOT NULL;
CREATE INDEX events_actor_email ON events (tenant_id, actor_email) WHERE actor_email IS NOT NULL;
-- "Newest first" (occurred time) visits a tenant's blocks latest max_occurred first (vigil.store.search).
CREATE INDEX event_blocks_latest ON event_blocks (tenant_id, max_occurred, block, min_occurred);
