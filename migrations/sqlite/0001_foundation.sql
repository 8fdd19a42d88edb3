-- Foundation: tenants, their members, API keys, instance metadata.
-- Timestamps are INTEGER microseconds since the Unix epoch, UTC.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE tenants (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    slug           TEXT NOT NULL UNIQUE,
    plan           TEXT NOT NULL CHECK (plan IN ('basic', 'pro', 'enterprise')),
    status         TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    deactivated_at INTEGER
) STRICT;
CREATE INDEX tenants_by_created ON tenants (created_at, id);

INSERT INTO tenants (id, name, slug, plan, status, created_at, updated_at)
VALUES ('00000000-0000-0000-0000-000000000000', 'Default', 'default', 'enterprise', 'active',
        CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER),
        CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));

-- The default tenant is what single-tenant mode runs on: it can be neither deleted nor
-- deactivated, whatever path the write takes.
CREATE TRIGGER default_tenant_is_permanent BEFORE DELETE ON tenants
WHEN OLD.id = '00000000-0000-0000-0000-000000000000'
BEGIN
    SELECT RAISE(ABORT, 'the default tenant cannot be deleted');
END;
CREATE TRIGGER default_tenant_stays_active BEFORE UPDATE OF status ON tenants
WHEN NEW.id = '00000000-0000-0000-0000-000000000000' AND NEW.status <> 'active'
BEGIN
    SELECT RAISE(ABORT, 'the default tenant cannot be deactivated');
END;

CREATE TABLE tenant_users (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'member', 'viewer')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
) STRICT, WITHOUT ROWID;
-- The primary key leads with tenant_id, so it is the tenant index.

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'member', 'viewer', 'service')),
    user_id    TEXT,
    key_hash   BLOB NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
) STRICT;
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at, id);
