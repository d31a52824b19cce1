-- Key lifecycle: when a key was last used (coalesced: written at most once a minute per key), and rotation:
-- the secret a rotation replaced keeps working until previous_until, then only secret_hash does.
ALTER TABLE api_keys ADD COLUMN last_used_at TEXT;
ALTER TABLE api_keys ADD COLUMN rotated_at TEXT;
ALTER TABLE api_keys ADD COLUMN previous_hash BLOB;   -- SHA-256 of the replaced secret, never the secret
ALTER TABLE api_keys ADD COLUMN previous_until TEXT;
