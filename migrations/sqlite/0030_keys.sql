-- Keys that rotate themselves: generation and line, rotation policy, who changed them and when
-- they expired. Derived from the client streams like the rest of rm_keys.
ALTER TABLE rm_keys ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rm_keys ADD COLUMN lineage TEXT;
ALTER TABLE rm_keys ADD COLUMN predecessor TEXT;
ALTER TABLE rm_keys ADD COLUMN successor TEXT;
ALTER TABLE rm_keys ADD COLUMN rotate_every_ms INTEGER;
ALTER TABLE rm_keys ADD COLUMN overlap_ms INTEGER;
ALTER TABLE rm_keys ADD COLUMN rotated_at TEXT;
ALTER TABLE rm_keys ADD COLUMN rotated_by TEXT;
ALTER TABLE rm_keys ADD COLUMN expired_at TEXT;
ALTER TABLE rm_keys ADD COLUMN issued_by TEXT;
ALTER TABLE rm_keys ADD COLUMN revoked_by TEXT;
