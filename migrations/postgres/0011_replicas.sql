-- State that one SQLite process keeps in memory and several replicas must share
-- (docs/SCALE_OUT.md §3-5). Only PostgreSQL has these tables (db::pg::schema::POSTGRES_ONLY).

-- Each tenant's all-time usage: the row every replica's usage writer locks (FOR UPDATE, in
-- tenant order) before adding events, so the bound and the limit crossings are computed on
-- what every replica committed. `version` moves with every commit, so a writer knows whether
-- the windows it holds in memory are still exact. A missing row is all zeros.
CREATE TABLE usage_totals (
    tenant_id          UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    version            BIGINT NOT NULL DEFAULT 0,
    events             BIGINT NOT NULL DEFAULT 0,
    input_tokens       BIGINT NOT NULL DEFAULT 0,
    output_tokens      BIGINT NOT NULL DEFAULT 0,
    estimated_nanos    BIGINT NOT NULL DEFAULT 0,
    billed_nanos       BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens  BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens   BIGINT NOT NULL DEFAULT 0
) WITH (fillfactor = 90);

-- One row per committed writer group: after a connection lost during COMMIT, the writer looks
-- here to learn whether its group was stored, instead of storing it twice.
CREATE TABLE writer_commits (
    batch_id     UUID PRIMARY KEY,
    committed_at BIGINT NOT NULL
);

-- Each tenant's shared request-rate bucket (docs/SCALE_OUT.md §4.3): `tat` is GCRA's theoretical
-- arrival time in microseconds on the app's clock; replicas take local grants of a few tokens
-- from it with one single-row statement (limits::shared). UNLOGGED: a crash resets every bucket
-- to full, as a restart of the one SQLite process does, and the hot row writes no WAL. A missing
-- row is a full bucket. No foreign key: a grant never waits on the tenant's row.
CREATE UNLOGGED TABLE rate_buckets (
    tenant_id UUID PRIMARY KEY,
    tat       BIGINT NOT NULL
);

-- The hosted job queue across replicas (docs/SCALE_OUT.md §5.1, src/queue/pg). One SQLite
-- process keeps the rotation among tenants and the counts by status in memory; replicas keep
-- them here, one row per tenant that has had a job, changed in the same transaction as the jobs.
--   turn, taken   the rotation: the eligible row with the lowest `turn` has the turn; it takes
--                 up to `weight` jobs, then moves to the back (`turn` = nextval('queue_turns')).
--                 A tenant whose waiting jobs went from none to some joins at the back.
--   weight, max_running, active
--                 what the service last told the store about the tenant (plan weight, its
--                 `max_running_jobs`, whether it is active): leases compare and correct them.
--   next_run_at   no waiting job is due before this (a lower bound, corrected by leases).
--   queued .. cancelled
--                 the tenant's jobs by status: counts without reading `jobs`, and `running`,
--                 changed only under this row's lock, is what keeps `max_running` across replicas.
CREATE SEQUENCE queue_turns;

CREATE TABLE queue_tenants (
    tenant_id   UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    weight      BIGINT NOT NULL CHECK (weight >= 1),
    max_running BIGINT NOT NULL CHECK (max_running >= 0),
    active      BOOLEAN NOT NULL,
    turn        BIGINT NOT NULL,
    taken       BIGINT NOT NULL DEFAULT 0,
    next_run_at BIGINT NOT NULL,
    queued      BIGINT NOT NULL DEFAULT 0,
    running     BIGINT NOT NULL DEFAULT 0,
    retrying    BIGINT NOT NULL DEFAULT 0,
    succeeded   BIGINT NOT NULL DEFAULT 0,
    dead        BIGINT NOT NULL DEFAULT 0,
    cancelled   BIGINT NOT NULL DEFAULT 0
);
-- A lease's first step: the eligible tenants in turn order, read from this index only.
CREATE INDEX queue_tenants_by_turn ON queue_tenants (turn, tenant_id)
    WHERE active AND queued + retrying > 0;
