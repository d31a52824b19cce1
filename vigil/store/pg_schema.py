"""PostgreSQL schema migrations: the control schema, and the schema every tenant gets.

Tenant migrations are templates: ``{s}`` is the tenant's schema, ``{w}`` the writer role, ``{r}`` the tenant's
reader role. Versions only grow; ``vigil migrate`` applies what is missing, to the control schema and to every
tenant schema, and is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from vigil.store.backfill import postgres_identity_columns

CONTROL_MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "control",
        """
CREATE OR REPLACE FUNCTION vigil.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'vigil: % on %.% refused: the log is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME;
END $$;

CREATE TABLE vigil.tenants (
    id             serial PRIMARY KEY,
    slug           text NOT NULL UNIQUE,
    name           text NOT NULL,
    created_at     text NOT NULL,
    schema_version int NOT NULL DEFAULT 0
);
CREATE TABLE vigil.api_keys (
    key_id      text PRIMARY KEY,
    tenant_id   int NOT NULL REFERENCES vigil.tenants(id),
    name        text NOT NULL,
    scopes      text NOT NULL,
    secret_hash bytea NOT NULL,
    created_at  text NOT NULL,
    revoked_at  text
);
CREATE TABLE vigil.checkpoints (
    tenant_id  int NOT NULL REFERENCES vigil.tenants(id),
    size       bigint NOT NULL,
    root       bytea NOT NULL,
    note       text NOT NULL,
    created_at text NOT NULL,
    PRIMARY KEY (tenant_id, size)
);
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON vigil.checkpoints
    FOR EACH ROW EXECUTE FUNCTION vigil.refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON vigil.checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION vigil.refuse_change();
INSERT INTO vigil.tenants (slug, name, created_at)
    VALUES ('vigil', 'Vigil platform', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));
""",
    ),
    (
        2,
        "detection",
        """
-- Alerts, detection cursors and per-tenant rule settings live in the control schema: the security console
-- reads alerts across tenants. These rows change (an alert gathers hits), so no append-only triggers.
CREATE TABLE vigil.alerts (
    id          text PRIMARY KEY,
    tenant_id   int NOT NULL REFERENCES vigil.tenants(id),
    rule_id     text NOT NULL,
    title       text NOT NULL,
    severity    text NOT NULL,
    techniques  text NOT NULL,
    summary     text NOT NULL,
    grp         text NOT NULL,
    dedup_key   text NOT NULL,
    evidence    text NOT NULL,
    first_us    bigint NOT NULL,
    last_us     bigint NOT NULL,
    hits        int NOT NULL,
    status      text NOT NULL,
    created_at  text NOT NULL,
    updated_at  text NOT NULL
);
CREATE INDEX ON vigil.alerts (tenant_id, dedup_key, last_us);
CREATE INDEX ON vigil.alerts (tenant_id, id);
CREATE TABLE vigil.detect_cursors (
    tenant_id   int PRIMARY KEY REFERENCES vigil.tenants(id),
    next_seq    bigint NOT NULL
);
CREATE TABLE vigil.rule_settings (
    tenant_id   int NOT NULL REFERENCES vigil.tenants(id),
    rule_id     text NOT NULL,
    enabled     boolean,
    params      text NOT NULL DEFAULT '{}',
    updated_at  text NOT NULL,
    PRIMARY KEY (tenant_id, rule_id)
);
""",
    ),
    (
        3,
        "append_only_always",
        """
-- A trigger enabled the default way does not fire under SET session_replication_role = replica, which any
-- superuser session can set: ENABLE ALWAYS makes the append-only rule hold there too.
ALTER TABLE vigil.checkpoints ENABLE ALWAYS TRIGGER checkpoints_append_only;
ALTER TABLE vigil.checkpoints ENABLE ALWAYS TRIGGER checkpoints_no_truncate;
""",
    ),
    (
        4,
        "key_lifecycle",
        """
-- When a key was last used (coalesced: written at most once a minute per key), and rotation: the secret a
-- rotation replaced keeps working until previous_until, then only secret_hash does.
ALTER TABLE vigil.api_keys ADD COLUMN last_used_at text;
ALTER TABLE vigil.api_keys ADD COLUMN rotated_at text;
ALTER TABLE vigil.api_keys ADD COLUMN previous_hash bytea;
ALTER TABLE vigil.api_keys ADD COLUMN previous_until text;
""",
    ),
    (
        5,
        "idempotency",
        """
-- Idempotency keys of ingest requests: per tenant, the SHA-256 of the key (never the key itself), the fingerprint
-- of the body it came with and the answer given, so a retry gets the same answer and the same key with another
-- body is refused. Rows expire (idempotency_window) and are deleted: no append-only trigger.
CREATE TABLE vigil.idempotency_keys (
    tenant_id   int NOT NULL REFERENCES vigil.tenants(id),
    key_hash    bytea NOT NULL,
    fingerprint bytea NOT NULL,
    response    bytea NOT NULL,
    created_us  bigint NOT NULL,
    PRIMARY KEY (tenant_id, key_hash)
);
CREATE INDEX ON vigil.idempotency_keys (created_us);
""",
    ),
]

TENANT_MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "tenant",
        """
CREATE SCHEMA {s};
CREATE TABLE {s}.events (
    seq         bigint NOT NULL,
    received_us bigint NOT NULL,
    id          uuid NOT NULL,
    occurred_us bigint NOT NULL,
    action      text NOT NULL,
    category    text NOT NULL,
    outcome     text NOT NULL,
    actor_id    text NOT NULL,
    body        bytea NOT NULL,
    leaf_hash   bytea NOT NULL,
    search      text NOT NULL,
    PRIMARY KEY (seq, received_us)
) PARTITION BY RANGE (received_us);
CREATE INDEX ON {s}.events (id);
CREATE INDEX ON {s}.events (actor_id, seq);
CREATE INDEX ON {s}.events (action, seq);
CREATE INDEX ON {s}.events USING gin (to_tsvector('simple', regexp_replace(search, '[^[:alnum:]]+', ' ', 'g')));
-- failures, denials and errors are rare and are what security searches ask for
CREATE INDEX ON {s}.events (outcome, seq) WHERE outcome <> 'success';
CREATE TABLE {s}.event_targets (
    target_id text NOT NULL,
    type      text NOT NULL,
    seq       bigint NOT NULL,
    PRIMARY KEY (target_id, type, seq)
);
CREATE TABLE {s}.tree_nodes (
    level int NOT NULL,
    idx   bigint NOT NULL,
    hash  bytea NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE {s}.event_blocks (
    block        bigint PRIMARY KEY,
    min_occurred bigint NOT NULL,
    max_occurred bigint NOT NULL
);
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {s}.events
    FOR EACH ROW EXECUTE FUNCTION vigil.refuse_change();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON {s}.events
    FOR EACH STATEMENT EXECUTE FUNCTION vigil.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {s}.event_targets
    FOR EACH ROW EXECUTE FUNCTION vigil.refuse_change();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON {s}.event_targets
    FOR EACH STATEMENT EXECUTE FUNCTION vigil.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {s}.tree_nodes
    FOR EACH ROW EXECUTE FUNCTION vigil.refuse_change();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON {s}.tree_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION vigil.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {s}.event_blocks
    FOR EACH ROW EXECUTE FUNCTION vigil.refuse_change();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON {s}.event_blocks
    FOR EACH STATEMENT EXECUTE FUNCTION vigil.refuse_change();
REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM PUBLIC;
GRANT USAGE ON SCHEMA {s} TO "{w}", "{r}";
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA {s} TO "{w}";
GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO "{r}";
""",
    ),
    (
        2,
        "append_only_always",
        """
-- Fire under session_replication_role = replica too (see the control migration of the same name).
ALTER TABLE {s}.events ENABLE ALWAYS TRIGGER append_only;
ALTER TABLE {s}.events ENABLE ALWAYS TRIGGER no_truncate;
ALTER TABLE {s}.event_targets ENABLE ALWAYS TRIGGER append_only;
ALTER TABLE {s}.event_targets ENABLE ALWAYS TRIGGER no_truncate;
ALTER TABLE {s}.tree_nodes ENABLE ALWAYS TRIGGER append_only;
ALTER TABLE {s}.tree_nodes ENABLE ALWAYS TRIGGER no_truncate;
ALTER TABLE {s}.event_blocks ENABLE ALWAYS TRIGGER append_only;
ALTER TABLE {s}.event_blocks ENABLE ALWAYS TRIGGER no_truncate;
""",
    ),
    (
        3,
        "identity_columns",
        """
-- The identity filters of a search (ip=, actor_name=, actor_email=): context.ip as 16 bytes that sort as the
-- addresses do (IPv4 as IPv4-mapped IPv6, so a CIDR block is one range; the same keys as the SQLite store), and
-- the actor's name and e-mail case-folded. This migration's Python step (vigil.store.backfill) fills them from
-- the stored events; every append writes them from then on.
ALTER TABLE {s}.events ADD COLUMN ip bytea, ADD COLUMN actor_name text, ADD COLUMN actor_email text;
""",
    ),
    (
        4,
        "identity_indexes",
        """
-- Made after the backfill of migration 3. Partial: an event without an address or a name costs them nothing.
CREATE INDEX events_ip ON {s}.events (ip, seq) WHERE ip IS NOT NULL;
CREATE INDEX events_actor_name ON {s}.events (actor_name, seq) WHERE actor_name IS NOT NULL;
CREATE INDEX events_actor_email ON {s}.events (actor_email, seq) WHERE actor_email IS NOT NULL;
-- "Newest first" (occurred time) visits the blocks latest max_occurred first (vigil.store.search).
CREATE INDEX event_blocks_latest ON {s}.event_blocks (max_occurred, block) INCLUDE (min_occurred);
""",
    ),
    (
        5,
        "client_ids",
        """
-- Clients keep their own ids: any UUID, or an opaque id such as evt_123. The id is kept as the event holds it
-- (a UUID lower-cased) in a text column compared byte by byte (COLLATE "C": no locale rules, and UUIDv7 text
-- sorts in time order as its bytes did). Rewrites the events partitions and their id index once; no row
-- trigger fires on a rewrite, and every value is the uuid's own text.
ALTER TABLE {s}.events ALTER COLUMN id TYPE text COLLATE "C" USING id::text;
""",
    ),
]

TENANT_STEPS: dict[int, Callable[[Any, str, Callable[[str], str]], None]] = {3: postgres_identity_columns}
"""Tenant migrations that also run Python after their SQL, in the same transaction: version -> the step, called
with (connection, tenant schema, the store's text mapping)."""


def month_bounds(at_us: int, ahead: int) -> list[tuple[str, int, int]]:
    """(name, start µs, end µs) of the month holding ``at_us`` and the ``ahead`` months after it."""
    at = datetime.fromtimestamp(at_us / 1_000_000, UTC)
    year, month = at.year, at.month
    out = []
    for _ in range(ahead + 1):
        nyear, nmonth = (year + 1, 1) if month == 12 else (year, month + 1)
        lo = int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * 1_000_000
        hi = int(datetime(nyear, nmonth, 1, tzinfo=UTC).timestamp()) * 1_000_000
        out.append((f"{year:04d}{month:02d}", lo, hi))
        year, month = nyear, nmonth
    return out
