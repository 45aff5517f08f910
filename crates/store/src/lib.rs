//! The store: connections, tokens, credits, sync state, run history and records.
//!
//! One implementation over `sqlx`'s `Any` driver serves both backends: an embedded SQLite file
//! (the default) and PostgreSQL. Every query is written once, with `$N` parameters, which both
//! accept; the few places the dialects differ go through [`Backend`] (the DDL, JSON paths, row
//! locks, and the placeholders of the multi-row statements of `apply_page`). Times are stored as
//! microseconds since the Unix epoch (`BIGINT`), JSON as text.
//!
//! Layout: `schema` opens the pools and migrates (SQL files under `migrations/`, one folder per
//! backend); `connections` holds connections, tokens, credits and settings; `schedule` the
//! claims and leases; `runs` stream state and run history; `records` the pages of records;
//! `webhooks` the endpoints, the outbox of events and their deliveries; `link` the link
//! sessions and their one-time codes.
//! On SQLite all writes go through one connection (writers queue in-process) and reads through
//! a small pool of read-only connections; on PostgreSQL row locks order the writers.
//!
//! Invariants the rest of Millrace relies on:
//! - a page of records and its stream checkpoint commit in one transaction;
//! - each stored change takes the connection's next change sequence number, and sequence numbers
//!   of one connection commit in increasing order (the connection row is locked while they are
//!   allocated), so a cursor over `seq` never skips a change;
//! - nothing is written for a connection that is not `active`: a disconnect that commits stops
//!   every later page of a running sync;
//! - records are never hard-deleted, except by [`Store::delete_data`];
//! - an event announcing a change (connection created, disconnected or needing reauthorisation,
//!   records changed, run finished) commits in the transaction of that change.

mod connections;
mod convert;
mod link;
mod records;
mod runs;
mod schedule;
mod schema;
pub mod secrets;
mod webhooks;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use millrace_model::{ConnectionStatus, Deployment, ObjectType, RunKind, RunStatus, StreamState};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::AnyPool;

pub use link::{CodeExchange, LinkCompletion, NewLinkSession};
pub use webhooks::{AttemptRecord, CursorPosition, DueDelivery, NewWebhookEndpoint, StoredEvent};

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no connection `{0}`")]
    ConnectionNotFound(String),
    #[error("not enough credits: {needed} needed, {available} available")]
    InsufficientCredits { needed: u32, available: u32 },
    /// A write for a connection that is no longer active (disconnected or reauth required).
    #[error("connection `{0}` is not active")]
    ConnectionInactive(String),
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// What `create_connection` stores.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub id: String,
    pub customer_id: String,
    pub system: String,
    pub deployment: Deployment,
    pub name: String,
    pub credits: u32,
    pub lookback_days: u32,
    pub sync_interval_seconds: u32,
    /// Credentials sealed by [`secrets::SecretBox`].
    pub sealed_credentials: Vec<u8>,
    /// SHA-256 hex of the connection token.
    pub token_hash: String,
    /// The streams to create, all `pending`.
    pub objects: Vec<ObjectType>,
    pub created_at: DateTime<Utc>,
}

/// Filter of `list_connections`; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct ConnectionFilter {
    pub customer_id: Option<String>,
    pub system: Option<String>,
    pub status: Option<ConnectionStatus>,
}

/// What a token hash resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLookup {
    pub connection_id: String,
    pub connection_status: ConnectionStatus,
    /// Set when the token was rotated away or its connection disconnected.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A stream's row, with the engine's private checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRow {
    pub object: ObjectType,
    pub state: StreamState,
    pub watermark: Option<DateTime<Utc>>,
    pub last_successful_sync_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub record_count: u64,
    pub checkpoint: Option<Checkpoint>,
    pub last_reconciled_at: Option<DateTime<Utc>>,
}

/// Progress of an unfinished read of one stream, committed with each page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub run_id: String,
    pub kind: RunKind,
    /// The lower bound the listing was started with.
    pub since: Option<DateTime<Utc>>,
    /// The source's continuation after the last stored page.
    pub next_page: Option<String>,
    /// Whether the listing comes in ascending change-time order.
    pub ordered_by_change: bool,
    /// The newest source change time stored by this read so far.
    pub max_seen: Option<DateTime<Utc>>,
    pub records_read: u64,
    pub pages_read: u64,
    pub records_expected: Option<u64>,
    /// The source's clock when the listing began, for listings not ordered by change.
    #[serde(default)]
    pub listing_started_at: Option<DateTime<Utc>>,
    /// The connection's change sequence number when this read began: every change the read
    /// stores comes after it. [`Store::complete_stream`] announces them from there in a
    /// `records.changed` event. `None` (a checkpoint of an older version) announces nothing.
    #[serde(default)]
    pub changes_after_seq: Option<i64>,
}

/// One record to upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordWrite {
    /// Millrace id, from `millrace_model::ids::record_id`.
    pub id: String,
    pub remote_id: String,
    /// Hash of everything that makes a change; equal hashes mean "unchanged, write nothing".
    pub content_hash: String,
    pub remote_created_at: Option<DateTime<Utc>>,
    pub remote_updated_at: Option<DateTime<Utc>>,
    pub remote_deleted_at: Option<DateTime<Utc>>,
    pub fields: Map<String, Value>,
    pub custom_fields: Map<String, Value>,
    pub remote_data: Value,
}

/// What `apply_page` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub id: String,
    pub remote_id: String,
    /// The connection's change sequence number of the record's last change.
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub remote_created_at: Option<DateTime<Utc>>,
    pub remote_updated_at: Option<DateTime<Utc>>,
    pub remote_deleted_at: Option<DateTime<Utc>>,
    pub fields: Map<String, Value>,
    pub custom_fields: Map<String, Value>,
    /// Present only when the query asked for it.
    pub remote_data: Option<Value>,
}

/// A stored record whose JSON members (`fields`, `custom_fields`, `remote_data`) are the JSON
/// object texts the store holds, unparsed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecordText {
    pub id: String,
    pub remote_id: String,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub remote_created_at: Option<DateTime<Utc>>,
    pub remote_updated_at: Option<DateTime<Utc>>,
    pub remote_deleted_at: Option<DateTime<Utc>>,
    pub fields: String,
    pub custom_fields: String,
    pub remote_data: Option<String>,
}

/// An equality filter on a unified field, by JSON path (e.g. `["asset", "id"]` or `["status"]`).
///
/// Path segments come from the API's fixed list of filterable fields, never from user input.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordFilter {
    pub path: Vec<&'static str>,
    pub value: String,
}

/// A page of records in change order.
#[derive(Debug, Clone, Default)]
pub struct RecordQuery {
    /// Return records whose `seq` is greater than this.
    pub after_seq: i64,
    pub limit: u32,
    pub modified_after: Option<DateTime<Utc>>,
    pub include_deleted: bool,
    pub include_remote_data: bool,
    pub filters: Vec<RecordFilter>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub finished_at: DateTime<Utc>,
    pub records_read: u64,
    pub stats: ApplyStats,
    pub records_deleted: u64,
    pub error: Option<String>,
    /// The counts of each stream the run read, for the `sync.completed` or `sync.failed` event.
    pub objects: BTreeMap<ObjectType, StreamCounts>,
}

/// What one run did to one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StreamCounts {
    pub read: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deleted: u64,
}

/// How a store connects.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections of the pool: on PostgreSQL the one pool, on SQLite the read-only pool
    /// (SQLite always writes through a single connection).
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { max_connections: 8 }
    }
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Serves reads; on SQLite a pool of read-only connections beside the writer.
    read: AnyPool,
    /// Serves writes; on SQLite exactly one connection, so writers queue.
    write: AnyPool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    ///
    /// `url` is `sqlite://PATH` (created with its parent folders) or `postgres://...`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, &StoreOptions::default()).await
    }

    /// Like [`Store::open`], with connection pool settings.
    pub async fn open_with(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let pools = schema::open(url, options).await?;
        tracing::debug!(backend = ?pools.backend, "store opened");
        Ok(Store {
            backend: pools.backend,
            read: pools.read,
            write: pools.write,
        })
    }

    /// Returns which database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks the database answers (readiness probe).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Closes every connection of the store (and of its clones); later calls fail.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// Starts a write transaction (see [`schema::begin_write`]).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        schema::begin_write(self.backend, &self.write).await
    }
}
