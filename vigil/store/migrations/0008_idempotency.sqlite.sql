-- Idempotency keys of ingest requests: per tenant, the SHA-256 of the key (never the key itself), the fingerprint
-- of the body it came with and the answer that was given, so a retry of the same request gets the same answer and
-- the same key with another body is refused. Rows expire (idempotency_window); unlike the log they are deleted.
-- events.id now also holds clients' opaque ids: a UUID stays its 16 bytes (BLOB), an opaque id is TEXT.
CREATE TABLE idempotency_keys (
    tenant_id   INTEGER NOT NULL,
    key_hash    BLOB NOT NULL,
    fingerprint BLOB NOT NULL,
    response    BLOB NOT NULL,
    created_us  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key_hash)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_us);
