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
