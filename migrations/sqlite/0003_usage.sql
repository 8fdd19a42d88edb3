-- Usage metering: raw events (idempotent per tenant), daily rollups per dimension kept in the
-- same transaction as the events, price overrides, and agent preferences.

CREATE TABLE usage_events (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event_id        TEXT,
    ts              INTEGER NOT NULL,
    model           TEXT NOT NULL,
    input_tokens    INTEGER NOT NULL CHECK (input_tokens >= 0),
    output_tokens   INTEGER NOT NULL CHECK (output_tokens >= 0),
    estimated_nanos INTEGER NOT NULL CHECK (estimated_nanos >= 0),
    billed_nanos    INTEGER NOT NULL CHECK (billed_nanos >= 0),
    -- The prices the event was charged with (nano-USD per million tokens), so a later price
    -- change never alters a recorded cost; NULL when the client sent the cost or the model is unknown.
    input_price     INTEGER,
    output_price    INTEGER,
    cost_source     TEXT NOT NULL CHECK (cost_source IN ('client', 'pricing', 'unknown_model')),
    execution_mode  TEXT NOT NULL CHECK (execution_mode IN ('hosted', 'byo_key')),
    markup          INTEGER NOT NULL,
    pipeline_stage  TEXT,
    agent_name      TEXT,
    job_id          TEXT,
    user_id         TEXT,
    duration_ms     INTEGER,
    metadata        TEXT,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX usage_events_by_time ON usage_events (tenant_id, ts, seq);
CREATE UNIQUE INDEX usage_events_by_event_id ON usage_events (tenant_id, event_id)
    WHERE event_id IS NOT NULL;
CREATE INDEX usage_events_by_job ON usage_events (tenant_id, job_id, ts) WHERE job_id IS NOT NULL;

-- One row per tenant, UTC day (days since the epoch), dimension and key. dim '' is the total;
-- dims 'model', 'pipeline_stage', 'agent_name', 'user_id' hold one row per value ('' for none),
-- so the groups of any dimension sum to the total.
CREATE TABLE usage_rollups (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day             INTEGER NOT NULL,
    dim             TEXT NOT NULL,
    key             TEXT NOT NULL,
    events          INTEGER NOT NULL,
    input_tokens    INTEGER NOT NULL,
    output_tokens   INTEGER NOT NULL,
    estimated_nanos INTEGER NOT NULL,
    billed_nanos    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, dim, day, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE pricing_overrides (
    model      TEXT PRIMARY KEY,
    input_usd_per_million_nanos  INTEGER NOT NULL CHECK (input_usd_per_million_nanos >= 0),
    output_usd_per_million_nanos INTEGER NOT NULL CHECK (output_usd_per_million_nanos >= 0),
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE agent_preferences (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    agent_name TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, agent_name)
) STRICT, WITHOUT ROWID;
