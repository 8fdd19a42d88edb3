-- Versioned tenant settings, encrypted provider keys, and operational events.

-- Every settings change is a new row; the current settings are the highest version.
CREATE TABLE settings_versions (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL CHECK (version >= 1),
    body       TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, version)
) STRICT, WITHOUT ROWID;

-- Tenants that exist before this migration start at version 1 with the defaults; the binary
-- fills in the body's defaults when it reads `{}`.
INSERT INTO settings_versions (tenant_id, version, body, changed_by, changed_at)
SELECT id, 1, '{}', 'system', created_at FROM tenants;

-- AES-256-GCM envelopes (see src/crypto.rs); `masked` is the display form, never the key.
CREATE TABLE provider_keys (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    provider   TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    masked     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, provider)
) STRICT, WITHOUT ROWID;

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    category   TEXT NOT NULL,
    event_type TEXT NOT NULL,
    severity   TEXT NOT NULL CHECK (severity IN ('debug', 'info', 'warning', 'error', 'critical')),
    message    TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    -- Set for events that may happen once only (a limit crossing per window and mark): the
    -- unique index below makes "exactly once" a property of the schema, not of timing.
    once_key   TEXT
) STRICT;
CREATE INDEX events_by_tenant ON events (tenant_id, created_at, seq);
CREATE UNIQUE INDEX events_once ON events (tenant_id, once_key) WHERE once_key IS NOT NULL;
