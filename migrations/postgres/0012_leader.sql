-- Who runs the background duties that must not run on every replica at once, and which
-- replicas are alive (docs/SCALE_OUT.md §5.3, src/db/pg/leader.rs). Times are PostgreSQL's own
-- clock, so replicas whose clocks disagree still agree on who leads.

-- One row per duty group: the holder renews `expires_at` every few seconds; any replica may
-- take the row once it has expired (River's river_leader).
CREATE TABLE leader (
    name       TEXT COLLATE "C" PRIMARY KEY,
    holder     UUID NOT NULL,
    elected_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- Each running replica's heartbeat: the number seen in the last few seconds sizes the shared
-- rate limiter's fallback (limit / replicas while the database cannot be reached).
CREATE UNLOGGED TABLE replicas (
    id         UUID PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    seen_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX replicas_seen ON replicas (seen_at);

-- The rate a tenant's shared bucket was last used at: a row used at another rate starts full at
-- the new one (limits::shared), as the in-memory bucket does when the setting changes.
ALTER TABLE rate_buckets ADD COLUMN per_minute BIGINT NOT NULL DEFAULT 0;
