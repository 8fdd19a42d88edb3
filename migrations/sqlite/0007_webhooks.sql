-- Webhook endpoints and the delivery outbox (Standard Webhooks).

-- Instance endpoints (created with the admin token; they receive every tenant's events) are
-- stored under the default tenant with scope 'instance': every tenant-owned table keeps
-- `tenant_id NOT NULL REFERENCES tenants`, the default tenant is never deleted, and deliveries
-- reference one endpoints table whatever the scope. A tenant's own list never shows them.
CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    scope           TEXT NOT NULL CHECK (scope IN ('tenant', 'instance')),
    url             TEXT NOT NULL,
    -- JSON array of names and `prefix.*` patterns; NULL receives every event.
    event_types     TEXT,
    description     TEXT,
    format          TEXT NOT NULL CHECK (format IN ('standard', 'slack')),
    enabled         INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    disabled_reason TEXT,
    -- AES-256-GCM envelopes under the master key, bound to the tenant and this endpoint's id.
    secret          BLOB NOT NULL,
    previous_secret BLOB,
    previous_until  INTEGER,
    -- Set at the first failed attempt after a success; an endpoint failing for 5 days is disabled.
    failing_since   INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, created_at, id);

-- The outbox: written in the transaction that records the event. `tenant_id` is the
-- endpoint's owner (so a tenant export holds its endpoints' deliveries and nothing else);
-- `event_tenant_id` is whose event it is.
CREATE TABLE webhook_deliveries (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event_tenant_id TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    -- The event as GET /api/events renders it.
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL
                    CHECK (status IN ('pending', 'succeeded', 'failed', 'exhausted')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_status     INTEGER,
    last_error      TEXT,
    -- NULL once no attempt is due (succeeded or exhausted).
    next_attempt_at INTEGER,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_deliveries_by_tenant ON webhook_deliveries (tenant_id);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, seq);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
