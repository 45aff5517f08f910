//! Connections, their streams, sync runs and credits: the shapes of the management API.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Defines a string-valued enum with `as_str`, `FromStr` and `Display` from one table.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// Returns the value as it appears in JSON and in the store.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)*
                    _ => Err(format!(
                        "`{text}` is not one of: {}",
                        [$($text),*].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum! {
    /// Where the customer runs the system; on-premise doubles the credit cost.
    Deployment { Cloud => "cloud", OnPremise => "on_premise", }
}

string_enum! {
    /// The lifecycle state of a connection.
    ConnectionStatus {
        Active => "active",
        ReauthRequired => "reauth_required",
        Disconnected => "disconnected",
    }
}

string_enum! {
    /// The sync state of one stream.
    StreamState {
        Pending => "pending",
        Running => "running",
        Idle => "idle",
        Failed => "failed",
        Paused => "paused",
    }
}

string_enum! {
    /// Whether a run takes a complete snapshot or reads changes since the watermark.
    RunKind { Initial => "initial", Incremental => "incremental", }
}

string_enum! {
    /// The outcome of a sync run.
    RunStatus {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

/// One customer's link to one instance of one system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Connection {
    pub id: String,
    /// The operator's own id for the customer.
    pub customer_id: String,
    /// The catalogue id of the system, e.g. `ibm_maximo`.
    pub system: String,
    pub deployment: Deployment,
    pub name: String,
    pub status: ConnectionStatus,
    /// Credits this connection holds while it is not disconnected.
    pub credits: u32,
    /// Days of transactional data the initial sync reads.
    pub lookback_days: u32,
    /// Seconds between scheduled incremental syncs.
    pub sync_interval_seconds: u32,
    pub created_at: DateTime<Utc>,
    pub disconnected_at: Option<DateTime<Utc>>,
    /// Why the connection is not active, when it is not.
    pub status_reason: Option<String>,
    pub streams: Vec<Stream>,
}

/// One object type of one connection, with its own sync state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Stream {
    /// The object type's slug, e.g. `work-orders`.
    pub object: String,
    pub state: StreamState,
    /// The newest source change time seen and stored by a successful run.
    pub watermark: Option<DateTime<Utc>>,
    pub last_successful_sync_at: Option<DateTime<Utc>>,
    /// Live records held (not deleted in the source).
    pub record_count: u64,
    pub last_error: Option<String>,
    /// When the next scheduled sync is due.
    pub next_run_at: Option<DateTime<Utc>>,
    /// Records read so far by the running sync, when one runs.
    pub progress: Option<StreamProgress>,
}

/// Live progress of a running stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamProgress {
    pub run_id: String,
    pub records_read: u64,
    pub pages_read: u64,
    /// Total the source announced for this listing, when it announces one.
    pub records_expected: Option<u64>,
}

/// One pass of the sync engine over the streams of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SyncRun {
    pub id: String,
    pub connection_id: String,
    pub kind: RunKind,
    pub status: RunStatus,
    /// What asked for the run: `connect`, `schedule`, `api` or `resume`.
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub records_read: u64,
    pub records_created: u64,
    pub records_updated: u64,
    pub records_unchanged: u64,
    pub records_deleted: u64,
    pub error: Option<String>,
}

/// The operator's credit pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Credits {
    pub total: u32,
    pub used: u32,
    pub available: u32,
    pub ledger: Vec<LedgerEntry>,
}

/// One movement of credits: a reservation (negative) or a return (positive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LedgerEntry {
    pub id: i64,
    pub connection_id: String,
    /// Change to the available credits: negative when reserved, positive when returned.
    pub delta: i64,
    /// `reserve` or `release`.
    pub reason: String,
    pub at: DateTime<Utc>,
}
