-- The hosted job queue (contract "Hosted job queue").
--
-- `seq` is the enqueue order. A worker's lease finds ready jobs through `jobs_ready`, one seek
-- per (tenant, queue, priority level), so it never reads the backlog; expired leases are found
-- through `jobs_leased`. Timestamps are microseconds since the epoch, like everywhere else.
CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    queue            TEXT NOT NULL,
    kind             TEXT,
    payload          TEXT NOT NULL,
    priority         INTEGER NOT NULL CHECK (priority >= 0 AND priority <= 9),
    status           TEXT NOT NULL CHECK (status = 'queued' OR status = 'running'
        OR status = 'retrying' OR status = 'succeeded' OR status = 'dead' OR status = 'cancelled'),
    attempts         INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    lease_seconds    INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    lease_expires_at INTEGER,
    lease_token      TEXT,
    idempotency_key  TEXT,
    last_error       TEXT,
    result           TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;
-- A tenant's list, newest first, with or without a status filter.
CREATE INDEX jobs_by_tenant ON jobs (tenant_id, status, seq);
CREATE INDEX jobs_by_tenant_seq ON jobs (tenant_id, seq);
-- An idempotency key names one job per tenant (for 24 hours; then the key is cleared from it).
CREATE UNIQUE INDEX jobs_by_idempotency_key ON jobs (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_ready ON jobs (tenant_id, queue, priority, run_at, seq)
    WHERE status = 'queued' OR status = 'retrying';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE status = 'running';

-- A job's usage (the usage events that name it in `job_id`) is kept as one all-time rollup row
-- per job (dim 'job_id', day 0), written with the events; existing events are rolled up here.
INSERT INTO usage_rollups (tenant_id, day, dim, key, events, input_tokens, output_tokens,
        estimated_nanos, billed_nanos, cache_read_tokens, cache_write_tokens, reasoning_tokens)
    SELECT tenant_id, 0, 'job_id', job_id, count(*), sum(input_tokens), sum(output_tokens),
        sum(estimated_nanos), sum(billed_nanos), sum(cache_read_tokens),
        sum(cache_write_tokens), sum(reasoning_tokens)
    FROM usage_events WHERE job_id IS NOT NULL GROUP BY tenant_id, job_id;
