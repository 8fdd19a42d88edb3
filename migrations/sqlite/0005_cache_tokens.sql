-- Cache and reasoning tokens (contract v2, "Usage events: cache and reasoning tokens").
-- `input_tokens` keeps counting every prompt token; the cache counts say how many of them were
-- read from or written to the provider's prompt cache, `reasoning_tokens` how many of the
-- output tokens were reasoning. Rows written before this migration had none: 0.
-- ADD COLUMN with a constant default fills existing rows without rewriting the table.

ALTER TABLE usage_events ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0
    CHECK (cache_read_tokens >= 0);
ALTER TABLE usage_events ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0
    CHECK (cache_write_tokens >= 0);
ALTER TABLE usage_events ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0
    CHECK (reasoning_tokens >= 0);
-- The cache prices the event was charged with (nano-USD per million tokens; the input price
-- when the model has no cache price of its own), beside input_price and output_price; NULL
-- when the cost did not come from the price table, and for events recorded before.
ALTER TABLE usage_events ADD COLUMN cache_read_price INTEGER;
ALTER TABLE usage_events ADD COLUMN cache_write_price INTEGER;

-- The rollups carry the same counts under the same names, so `tenantry verify` (which sums
-- each rollup column from the raw column of its name) checks them with the rest.
ALTER TABLE usage_rollups ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;

-- An operator's cache prices; NULL: the model's input price applies.
ALTER TABLE pricing_overrides ADD COLUMN cache_read_usd_per_million_nanos INTEGER
    CHECK (cache_read_usd_per_million_nanos >= 0);
ALTER TABLE pricing_overrides ADD COLUMN cache_write_usd_per_million_nanos INTEGER
    CHECK (cache_write_usd_per_million_nanos >= 0);
