//! The store: connections, tokens, credits, sync state, run history and records.
//!
//! One implementation over `sqlx`'s `Any` driver serves both backends: an embedded SQLite file
//! (the default) and PostgreSQL. Every query is written once, with `$N` parameters, which both
//! accept; the few places the dialects differ go through [`Backend`]. Times are stored as
//! microseconds since the Unix epoch (`BIGINT`), JSON as text.
//!
//! Invariants the rest of Millrace relies on:
//! - a page of records and its stream checkpoint commit in one transaction;
//! - each stored change takes the connection's next change sequence number, and sequence numbers
//!   of one connection commit in increasing order (the connection row is locked while they are
//!   allocated), so a cursor over `seq` never skips a change;
//! - nothing is written for a connection that is not `active`: a disconnect that commits stops
//!   every later page of a running sync;
//! - records are never hard-deleted, except by [`Store::delete_data`].

// INTERFACE SKELETON: the signatures below are the contract the sync engine and the API are
// written against. Bodies are to be filled in (modules may be split out freely).

pub mod secrets;

use chrono::{DateTime, Utc};
use millrace_model::{
    Connection, ConnectionStatus, Credits, Deployment, ObjectType, RunKind, RunStatus, StreamState,
    SyncRun,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[allow(unused_variables, clippy::unused_async)]
impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    ///
    /// `url` is `sqlite://PATH` (created with its parent folders) or `postgres://...`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        unimplemented!()
    }

    /// Returns which database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks the database answers (readiness probe).
    pub async fn ping(&self) -> Result<(), StoreError> {
        unimplemented!()
    }

    // ---- settings (a key/value table) ----

    /// Returns a setting.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        unimplemented!()
    }

    /// Stores a setting unless one exists; returns the value now stored.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        unimplemented!()
    }

    // ---- connections ----

    /// Reserves credits and creates the connection, its token and its streams, in one
    /// transaction. Refuses with `InsufficientCredits` (creating nothing) when the pool of
    /// `credit_pool` credits has fewer than `new.credits` available. Writes a `reserve` ledger
    /// entry. The connection is `active`, its streams `pending`, its next sync due now.
    pub async fn create_connection(
        &self,
        new: NewConnection,
        credit_pool: u32,
    ) -> Result<Connection, StoreError> {
        unimplemented!()
    }

    /// Returns a connection with its streams.
    pub async fn connection(&self, id: &str) -> Result<Option<Connection>, StoreError> {
        unimplemented!()
    }

    /// Lists connections with their streams, newest first.
    pub async fn list_connections(
        &self,
        filter: &ConnectionFilter,
    ) -> Result<Vec<Connection>, StoreError> {
        unimplemented!()
    }

    /// Resolves a token hash, including revoked tokens (so the API can say why it refuses).
    pub async fn token_lookup(&self, token_hash: &str) -> Result<Option<TokenLookup>, StoreError> {
        unimplemented!()
    }

    /// Revokes the connection's live token and stores `new_token_hash` as its token.
    /// Refuses with `ConnectionInactive` for a connection that is not active.
    pub async fn rotate_token(&self, id: &str, new_token_hash: &str) -> Result<(), StoreError> {
        unimplemented!()
    }

    /// Disconnects: status `disconnected`, tokens revoked, credits returned (a `release` ledger
    /// entry), streams `paused`, lease dropped, no next sync. Idempotent: a second call changes
    /// nothing and returns the connection.
    pub async fn disconnect(&self, id: &str, at: DateTime<Utc>) -> Result<Connection, StoreError> {
        unimplemented!()
    }

    /// Marks an active connection `reauth_required` with `reason`; streams become `paused`.
    /// Credits stay reserved. Does nothing to a disconnected connection.
    pub async fn set_reauth_required(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        unimplemented!()
    }

    /// Returns the sealed credentials of a connection.
    pub async fn sealed_credentials(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        unimplemented!()
    }

    /// Deletes every record of the connection and resets its streams (no watermark, no
    /// checkpoint, zero counts, state `paused` if disconnected else `pending`), and bumps the
    /// connection's data epoch so that earlier cursors become stale. Returns records deleted.
    pub async fn delete_data(&self, id: &str) -> Result<u64, StoreError> {
        unimplemented!()
    }

    /// Returns the connection's data epoch (0 until data is first deleted).
    pub async fn data_epoch(&self, id: &str) -> Result<i64, StoreError> {
        unimplemented!()
    }

    // ---- credits ----

    /// Returns the pool of `total` credits, what active and reauth-required connections hold,
    /// and the whole ledger, newest first.
    pub async fn credits(&self, total: u32) -> Result<Credits, StoreError> {
        unimplemented!()
    }

    // ---- scheduling and leases ----

    /// Claims up to `limit` connections that are active, due (`next_sync_at <= now`) and not
    /// leased by a live worker (no lease, or `lease_until < now`), leasing each to `worker`
    /// until `lease_until`. Returns their ids. Each connection is claimed by one worker only,
    /// even with several processes on one PostgreSQL database.
    pub async fn claim_due(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        unimplemented!()
    }

    /// Extends `worker`'s lease; returns false when the lease was lost or the connection is not
    /// active any more (the run must stop).
    pub async fn renew_lease(
        &self,
        id: &str,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        unimplemented!()
    }

    /// Drops `worker`'s lease and sets when the next scheduled sync is due (`None`: none).
    pub async fn release_lease(
        &self,
        id: &str,
        worker: &str,
        next_sync_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        unimplemented!()
    }

    /// Makes an active connection's next sync due now; refuses inactive connections.
    pub async fn request_sync(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        unimplemented!()
    }

    /// Returns when the connection's next sync is due.
    pub async fn next_sync_at(&self, id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        unimplemented!()
    }

    // ---- streams and runs ----

    /// Returns the connection's streams with their checkpoints, in object order.
    pub async fn streams(&self, connection_id: &str) -> Result<Vec<StreamRow>, StoreError> {
        unimplemented!()
    }

    /// Sets a stream's state and, when given, its last error (`Some(None)` clears it).
    pub async fn set_stream_state(
        &self,
        connection_id: &str,
        object: ObjectType,
        state: StreamState,
        last_error: Option<Option<&str>>,
    ) -> Result<(), StoreError> {
        unimplemented!()
    }

    /// Records that a stream finished a complete read: state `idle`, watermark set (kept when
    /// `None`), `last_successful_sync_at = at`, checkpoint and last error cleared.
    pub async fn complete_stream(
        &self,
        connection_id: &str,
        object: ObjectType,
        watermark: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        unimplemented!()
    }

    /// Records that a reconciliation pass finished for a stream at `at`.
    pub async fn set_reconciled(
        &self,
        connection_id: &str,
        object: ObjectType,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        unimplemented!()
    }

    /// Opens a run history row (`running`) and returns its id.
    pub async fn start_run(
        &self,
        connection_id: &str,
        kind: RunKind,
        trigger: &str,
        at: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        unimplemented!()
    }

    /// Closes a run history row.
    pub async fn finish_run(&self, run_id: &str, outcome: &RunOutcome) -> Result<(), StoreError> {
        unimplemented!()
    }

    /// Marks runs still `running` for a connection as `failed` with `reason` (a dead worker's).
    pub async fn abandon_runs(&self, connection_id: &str, reason: &str) -> Result<(), StoreError> {
        unimplemented!()
    }

    /// Returns a connection's runs, newest first.
    pub async fn runs(&self, connection_id: &str, limit: u32) -> Result<Vec<SyncRun>, StoreError> {
        unimplemented!()
    }

    // ---- records ----

    /// Stores one page and the stream's checkpoint in one transaction.
    ///
    /// Records whose stored `content_hash` equals the new one are left untouched (`unchanged`).
    /// New or changed records take the next change sequence numbers of the connection and
    /// `modified_at = at` (`created_at = at` for new ones). Keeps the stream's live record count
    /// (records with no `remote_deleted_at`) and sets state `running`. Fails with
    /// `ConnectionInactive`, storing nothing, when the connection is not active.
    pub async fn apply_page(
        &self,
        connection_id: &str,
        object: ObjectType,
        records: &[RecordWrite],
        checkpoint: &Checkpoint,
        at: DateTime<Utc>,
    ) -> Result<ApplyStats, StoreError> {
        unimplemented!()
    }

    /// Returns the remote ids of the stream's records not marked deleted.
    pub async fn live_remote_ids(
        &self,
        connection_id: &str,
        object: ObjectType,
    ) -> Result<Vec<String>, StoreError> {
        unimplemented!()
    }

    /// Sets `remote_deleted_at = at` on the given live records, each taking a new change
    /// sequence number; returns how many were marked. Fails with `ConnectionInactive` like
    /// `apply_page`.
    pub async fn mark_remote_deleted(
        &self,
        connection_id: &str,
        object: ObjectType,
        remote_ids: &[String],
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        unimplemented!()
    }

    /// Lists a stream's records in change order (ascending `seq`).
    pub async fn list_records(
        &self,
        connection_id: &str,
        object: ObjectType,
        query: &RecordQuery,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        unimplemented!()
    }

    /// Returns one record by Millrace id.
    pub async fn record(
        &self,
        connection_id: &str,
        object: ObjectType,
        id: &str,
        include_remote_data: bool,
    ) -> Result<Option<StoredRecord>, StoreError> {
        unimplemented!()
    }
}
