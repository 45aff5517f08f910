-- Millrace store, version 1 (SQLite). Times are microseconds since the Unix epoch; JSON is text.

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Rows locked to serialise operations that read then write shared totals (the credit pool).
CREATE TABLE locks (
    name TEXT PRIMARY KEY
);
INSERT INTO locks (name) VALUES ('credits');

CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    system TEXT NOT NULL,
    deployment TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT,
    credits BIGINT NOT NULL,
    lookback_days BIGINT NOT NULL,
    sync_interval_seconds BIGINT NOT NULL,
    sealed_credentials BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    disconnected_at BIGINT,
    change_seq BIGINT NOT NULL DEFAULT 0,
    data_epoch BIGINT NOT NULL DEFAULT 0,
    next_sync_at BIGINT,
    lease_owner TEXT,
    lease_until BIGINT
);
CREATE INDEX connections_customer ON connections (customer_id, created_at);
CREATE INDEX connections_due ON connections (status, next_sync_at);

CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections (id),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX tokens_connection ON tokens (connection_id);

CREATE TABLE credit_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id TEXT NOT NULL,
    delta BIGINT NOT NULL,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL
);

CREATE TABLE streams (
    connection_id TEXT NOT NULL REFERENCES connections (id),
    object TEXT NOT NULL,
    state TEXT NOT NULL,
    watermark BIGINT,
    last_successful_sync_at BIGINT,
    last_error TEXT,
    record_count BIGINT NOT NULL DEFAULT 0,
    checkpoint TEXT,
    last_reconciled_at BIGINT,
    PRIMARY KEY (connection_id, object)
);

CREATE TABLE sync_runs (
    id TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections (id),
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    run_trigger TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    records_read BIGINT NOT NULL DEFAULT 0,
    records_created BIGINT NOT NULL DEFAULT 0,
    records_updated BIGINT NOT NULL DEFAULT 0,
    records_unchanged BIGINT NOT NULL DEFAULT 0,
    records_deleted BIGINT NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX sync_runs_connection ON sync_runs (connection_id, started_at);

CREATE TABLE records (
    connection_id TEXT NOT NULL,
    object TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    seq BIGINT NOT NULL,
    content_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    modified_at BIGINT NOT NULL,
    remote_created_at BIGINT,
    remote_updated_at BIGINT,
    remote_deleted_at BIGINT,
    fields TEXT NOT NULL,
    custom_fields TEXT NOT NULL,
    remote_data TEXT NOT NULL,
    PRIMARY KEY (connection_id, object, remote_id)
);
CREATE INDEX records_seq ON records (connection_id, object, seq);
