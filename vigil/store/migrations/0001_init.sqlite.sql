-- Vigil embedded schema, version 1.
-- events.rid = (tenant_id << 40) | seq: the table is clustered by tenant then seq, and the same integer is the
-- rowid of the full-text index. Every secondary index leads with tenant_id, so no query can wander into another
-- tenant's rows by accident of the plan.

CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    secret_hash BLOB NOT NULL,   -- SHA-256 of the secret; the secret itself is never stored
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

CREATE TABLE events (
    rid         INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL,
    id          BLOB NOT NULL,       -- UUIDv7, 16 bytes
    occurred_at INTEGER NOT NULL,    -- microseconds since the epoch, UTC
    action      TEXT NOT NULL,
    category    TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    body        BLOB NOT NULL,       -- RFC 8785 canonical JSON: the Merkle leaf is SHA-256(0x00 || body)
    leaf_hash   BLOB NOT NULL
);
CREATE UNIQUE INDEX events_id ON events (tenant_id, id);
-- Each index ends, implicitly, with rid: equality on its columns yields rows already in seq order, so
-- "newest first" needs no sort.
CREATE INDEX events_time ON events (tenant_id, occurred_at);
CREATE INDEX events_actor ON events (tenant_id, actor_id);
CREATE INDEX events_action ON events (tenant_id, action);

-- Keyed by target id first: "who touched inv_123" is the common question; the type narrows it.
CREATE TABLE event_targets (
    tenant_id   INTEGER NOT NULL,
    target_id   TEXT NOT NULL,
    type        TEXT NOT NULL,
    rid         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, target_id, type, rid)
) WITHOUT ROWID;

-- Contentless: the words are indexed, the text lives only in events.body.
CREATE VIRTUAL TABLE events_fts USING fts5 (text, content='', detail=none, tokenize='unicode61');

-- Roots of complete perfect subtrees at levels 8, 16, 24, ... of each tenant's RFC 9162 tree (leaf hashes,
-- level 0, are events.leaf_hash). Any subtree hash is then at most 256 stored hashes away, so roots and proofs
-- at any size take O(log n) reads while the table holds about one row per 255 events.
CREATE TABLE tree_nodes (
    tenant_id   INTEGER NOT NULL,
    level       INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    hash        BLOB NOT NULL,
    PRIMARY KEY (tenant_id, level, idx)
) WITHOUT ROWID;

INSERT INTO tenants (slug, name, created_at) VALUES ('vigil', 'Vigil platform', strftime('%Y-%m-%dT%H:%M:%fZ'));

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'vigil: events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'vigil: events are append-only'); END;
CREATE TRIGGER event_targets_no_update BEFORE UPDATE ON event_targets
BEGIN SELECT RAISE(ABORT, 'vigil: events are append-only'); END;
CREATE TRIGGER event_targets_no_delete BEFORE DELETE ON event_targets
BEGIN SELECT RAISE(ABORT, 'vigil: events are append-only'); END;
CREATE TRIGGER tree_nodes_no_update BEFORE UPDATE ON tree_nodes
BEGIN SELECT RAISE(ABORT, 'vigil: tree data is append-only'); END;
CREATE TRIGGER tree_nodes_no_delete BEFORE DELETE ON tree_nodes
BEGIN SELECT RAISE(ABORT, 'vigil: tree data is append-only'); END;
