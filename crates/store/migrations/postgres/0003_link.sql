-- Millrace store, version 3 (PostgreSQL): link sessions, through which a customer connects a
-- system on the Link page. Times are microseconds since the Unix epoch; JSON is text.

CREATE TABLE link_sessions (
    id TEXT PRIMARY KEY,
    -- SHA-256 hex of the secret in the session's URL; the secret itself is not stored.
    url_token_hash TEXT NOT NULL UNIQUE,
    -- SHA-256 hex of the management key that created the session: only it can exchange the code.
    operator_key_hash TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    -- JSON array of system ids; NULL offers the whole catalogue.
    systems TEXT,
    redirect_uri TEXT NOT NULL,
    state TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- Set when the customer connected a system.
    connection_id TEXT REFERENCES connections (id),
    completed_at BIGINT,
    -- SHA-256 hex of the one-time code sent to redirect_uri.
    code_hash TEXT UNIQUE,
    code_expires_at BIGINT,
    -- The connection token sealed by the operator's key until the code is exchanged, then NULL.
    sealed_token BYTEA,
    exchanged_at BIGINT
);
CREATE INDEX link_sessions_created ON link_sessions (created_at);
