-- The delivery worker refills one endpoint at a time (the one an event was just queued for, or
-- whose delivery just finished): its next due deliveries come from this index, without reading
-- any other endpoint's backlog.
CREATE INDEX webhook_deliveries_due_by_endpoint
    ON webhook_deliveries (endpoint_id, next_attempt_at, seq)
    WHERE next_attempt_at IS NOT NULL;
