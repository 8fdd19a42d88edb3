-- Operational events expire after TENANTRY_EVENTS_RETENTION_DAYS, across every tenant.
-- `events_by_tenant` leads with tenant_id, so it cannot find `created_at < ?` without reading
-- the whole table; this index lets each small deletion batch go straight to the oldest rows.
CREATE INDEX events_by_created_at ON events (created_at);
