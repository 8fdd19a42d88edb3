-- Billing: monthly statements per tenant (contract "Billing").
--
-- A statement's lines are by model and execution mode, so the daily rollups gain two dimensions:
-- 'model.hosted' and 'model.byo_key', keyed by model, each holding the events recorded in that
-- execution mode. A statement then reads at most (days in the month x models) rollup rows,
-- whatever the number of raw events. Existing events are rolled up into them here.
INSERT INTO usage_rollups (tenant_id, day, dim, key, events, input_tokens, output_tokens,
        estimated_nanos, billed_nanos, cache_read_tokens, cache_write_tokens, reasoning_tokens)
    SELECT tenant_id,
        CASE WHEN ts >= 0 THEN ts / 86400000000 ELSE (ts + 1) / 86400000000 - 1 END,
        'model.' || execution_mode, model, count(*), sum(input_tokens), sum(output_tokens),
        sum(estimated_nanos), sum(billed_nanos), sum(cache_read_tokens),
        sum(cache_write_tokens), sum(reasoning_tokens)
    FROM usage_events GROUP BY 1, 2, 3, 4;

-- A final statement, stored once its period and grace have passed and never changed after.
-- `period` is the UTC month, 'YYYY-MM'.
CREATE TABLE statements (
    tenant_id          TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    period             TEXT NOT NULL,
    events             INTEGER NOT NULL,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    estimated_nanos    INTEGER NOT NULL,
    billed_nanos       INTEGER NOT NULL,
    amount_due_nanos   INTEGER NOT NULL,
    finalized_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, period)
) STRICT, WITHOUT ROWID;
-- The operator's report of a final period reads every tenant's statement of that period.
CREATE INDEX statements_by_period ON statements (period, tenant_id);

CREATE TABLE statement_lines (
    tenant_id          TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    period             TEXT NOT NULL,
    execution_mode     TEXT NOT NULL,
    model              TEXT NOT NULL,
    events             INTEGER NOT NULL,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    estimated_nanos    INTEGER NOT NULL,
    billed_nanos       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, period, execution_mode, model),
    FOREIGN KEY (tenant_id, period) REFERENCES statements (tenant_id, period) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
