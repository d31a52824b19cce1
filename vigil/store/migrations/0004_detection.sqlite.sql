-- Detection: alerts, each tenant's detection cursor, and per-tenant rule settings. Unlike the log these rows
-- change (an alert gathers hits while an attack goes on; its lifecycle comes later), so no append-only triggers.
CREATE TABLE alerts (
    id          TEXT PRIMARY KEY,            -- UUIDv7
    tenant_id   INTEGER NOT NULL,
    rule_id     TEXT NOT NULL,
    title       TEXT NOT NULL,
    severity    TEXT NOT NULL,
    techniques  TEXT NOT NULL,               -- JSON list
    summary     TEXT NOT NULL,
    grp         TEXT NOT NULL,               -- JSON object: what the alert is about
    dedup_key   TEXT NOT NULL,
    evidence    TEXT NOT NULL,               -- JSON list of [seq, event id], oldest first, capped
    first_us    INTEGER NOT NULL,
    last_us     INTEGER NOT NULL,
    hits        INTEGER NOT NULL,
    status      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX alerts_dedup ON alerts (tenant_id, dedup_key, last_us);
CREATE INDEX alerts_tenant ON alerts (tenant_id, id);

CREATE TABLE detect_cursors (
    tenant_id   INTEGER PRIMARY KEY,
    next_seq    INTEGER NOT NULL
);

CREATE TABLE rule_settings (
    tenant_id   INTEGER NOT NULL,
    rule_id     TEXT NOT NULL,
    enabled     INTEGER,                     -- NULL: the rule's default (on)
    params      TEXT NOT NULL DEFAULT '{}',  -- JSON object of threshold overrides
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, rule_id)
) WITHOUT ROWID;
