-- Millrace store, version 2 (SQLite): webhook endpoints, the outbox of events, deliveries and
-- their attempts. Times are microseconds since the Unix epoch; JSON is text.

CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    -- JSON array of event types; NULL delivers every type.
    events TEXT,
    sealed_secret BLOB NOT NULL,
    status TEXT NOT NULL,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    failing_since BIGINT,
    created_at BIGINT NOT NULL
);

-- The outbox: written in the transaction of the change it announces.
CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    connection_id TEXT,
    -- The whole event, {"type", "timestamp", "data"}, as sent (less the cursor).
    payload TEXT NOT NULL,
    -- For records.changed: the position the cursor sent with the event points after.
    cursor_object TEXT,
    cursor_seq BIGINT,
    cursor_epoch BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_events_created ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL REFERENCES webhook_events (id),
    status TEXT NOT NULL,
    attempt_count BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    lease_owner TEXT,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt BIGINT NOT NULL,
    attempted_at BIGINT NOT NULL,
    status_code BIGINT,
    latency_ms BIGINT NOT NULL,
    -- NULL when the attempt succeeded (a 2xx answer).
    error TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt);
