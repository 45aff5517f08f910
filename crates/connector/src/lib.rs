//! The connector contract: what every source system implements, and the registry of systems.
//!
//! A connector never touches the store. It checks credentials, reads one object type in pages
//! from a watermark, lists the ids the source holds (for reconciliation) and maps each native
//! record to the unified model while keeping the raw record. The sync engine decides what is
//! read when, and stores what comes back.

pub mod credentials;
pub mod error;
pub mod http;
pub mod registry;
pub mod time;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use millrace_model::{ObjectType, SystemInfo};
use serde_json::{Map, Value};

pub use credentials::Credentials;
pub use error::ConnectorError;
pub use registry::Registry;

/// A system's connector: its catalogue entry and a factory for live sources.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Returns the catalogue entry of this connector's system.
    fn system(&self) -> &SystemInfo;

    /// Builds a source client for one connection's credentials, without contacting the source.
    ///
    /// Fails with [`ConnectorError::InvalidCredentials`] when a required field is missing or
    /// malformed.
    fn open(&self, credentials: &Credentials) -> Result<Box<dyn Source>, ConnectorError>;

    /// Returns how far before the watermark an incremental read starts.
    ///
    /// The overlap absorbs changes the source commits with a change time slightly older than
    /// its newest visible one (clock steps, long transactions, second-truncated filters); the
    /// engine's content hashes keep re-read records from counting as changes.
    fn overlap_window(&self) -> std::time::Duration {
        std::time::Duration::from_secs(5 * 60)
    }

    /// Starts this system's sandbox server, when the connector ships one.
    async fn start_sandbox(
        &self,
        _options: SandboxOptions,
    ) -> Result<Option<RunningSandbox>, ConnectorError> {
        Ok(None)
    }
}

/// One connection's live client to a source.
#[async_trait]
pub trait Source: Send + Sync {
    /// Checks the credentials against the source with one cheap authenticated request.
    async fn check(&self) -> Result<(), ConnectorError>;

    /// Reads one page of `request.object`.
    async fn read_page(&self, request: &PageRequest) -> Result<Page, ConnectorError>;

    /// Lists one page of the remote ids the source holds for `object`, unfiltered, for the
    /// reconciliation that finds deletions in sources that do not report them.
    async fn list_ids(
        &self,
        object: ObjectType,
        page: Option<&str>,
    ) -> Result<IdPage, ConnectorError>;
}

/// What the sync engine asks a source for.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// The connection the records belong to; used to build references between records.
    pub connection_id: String,
    pub object: ObjectType,
    /// Read only records changed at or after this instant (inclusive); `None` reads everything.
    pub since: Option<DateTime<Utc>>,
    /// The opaque continuation a previous page returned as `next_page`; `None` for the first.
    pub page: Option<String>,
    /// The number of records per page the engine prefers.
    pub page_size: u32,
}

/// One page of records from a source.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub records: Vec<SourceRecord>,
    /// The continuation for the next page, or `None` when this was the last one.
    pub next_page: Option<String>,
    /// Whether the records of the whole listing come in ascending change-time order.
    ///
    /// When true, the engine may resume a crashed run from the newest change time it stored
    /// (re-reading that instant) instead of from the page continuation, which may not outlive
    /// the source's session.
    pub ordered_by_change: bool,
    /// How many records the whole listing holds, when the source says.
    pub total: Option<u64>,
    /// The source's own clock when the listing began (e.g. the `Date` of its first answer).
    ///
    /// For a listing not ordered by change, records changed while it runs carry change times
    /// at or after this instant, so the engine never moves the watermark past it: the next
    /// read starts early enough to see them.
    pub listing_started_at: Option<DateTime<Utc>>,
    /// Records of this page that could not be read or mapped. The engine stores the rest, goes
    /// on past them and reports them on the stream; a rejected record is read again when it
    /// next changes.
    pub rejected: Vec<RejectedRecord>,
}

/// A record a source delivered that could not be read or mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRecord {
    /// The record's remote id, when even that could not be read `None`.
    pub remote_id: Option<String>,
    /// Why, in words an operator can act on.
    pub reason: String,
}

/// One page of remote ids.
#[derive(Debug, Clone, Default)]
pub struct IdPage {
    pub remote_ids: Vec<String>,
    pub next_page: Option<String>,
}

/// One record as a connector delivers it: unified fields plus the source's raw record.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub remote_id: String,
    pub remote_created_at: Option<DateTime<Utc>>,
    pub remote_updated_at: Option<DateTime<Utc>>,
    /// Set when the source itself reports the record deleted.
    pub remote_deleted_at: Option<DateTime<Utc>>,
    /// The object type's unified fields, e.g. a serialised `millrace_model::objects::WorkOrder`.
    pub fields: Map<String, Value>,
    /// Source fields the unified model has no place for.
    pub custom_fields: Map<String, Value>,
    /// The source's raw record, as received.
    pub remote_data: Value,
}

impl SourceRecord {
    /// Builds a record from a typed unified object.
    pub fn new<T: serde::Serialize>(
        remote_id: impl Into<String>,
        unified: &T,
        remote_data: Value,
    ) -> Result<Self, ConnectorError> {
        let fields = match serde_json::to_value(unified) {
            Ok(Value::Object(fields)) => fields,
            Ok(other) => {
                return Err(ConnectorError::Mapping(format!(
                    "unified record serialised to {other}, not an object"
                )))
            }
            Err(err) => return Err(ConnectorError::Mapping(err.to_string())),
        };
        Ok(SourceRecord {
            remote_id: remote_id.into(),
            remote_created_at: None,
            remote_updated_at: None,
            remote_deleted_at: None,
            fields,
            custom_fields: Map::new(),
            remote_data,
        })
    }
}

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Address to listen on, e.g. `127.0.0.1:0` for any free port.
    pub listen: String,
    /// Folder of the public data sets the sandbox loads (`shared/data`).
    pub data_dir: Option<std::path::PathBuf>,
    /// IANA time zone the sandbox's server clock reports times in.
    pub time_zone: Option<String>,
    /// Seed for the values the sandbox derives deterministically.
    pub seed: u64,
    /// When set, replaces the real data with this many generated work orders (benchmarks).
    pub synthetic_work_orders: Option<u64>,
    /// Starts with no records at all, for tests that write every record themselves.
    pub empty: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            listen: "127.0.0.1:0".to_owned(),
            data_dir: None,
            time_zone: None,
            seed: 1,
            synthetic_work_orders: None,
            empty: false,
        }
    }
}

/// A sandbox that is serving.
pub struct RunningSandbox {
    pub system: String,
    /// Base URL of the sandbox, as a connection's credentials name it.
    pub base_url: String,
    /// Working credentials, exactly as `POST /v1/connections` takes them.
    pub credentials: Value,
    /// Resolves when the server stops.
    pub task: tokio::task::JoinHandle<()>,
    /// Stops the server when dropped or triggered.
    pub shutdown: tokio_util::sync::CancellationToken,
}
