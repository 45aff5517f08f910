//! What a connector gives the harness: a way to start its source, and to change that source's
//! data and state from outside, as users and administrators of the real system would.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use millrace_connector::Connector;
use millrace_model::ObjectType;
use serde_json::Value;

/// The change time a harness write gives a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeTime {
    /// The source's own clock, as a user's edit stamps it.
    Now,
    /// This instant (sub-second parts kept as the source stores them).
    At(DateTime<Utc>),
    /// This wall-clock time in the source's zone, which may be ambiguous or skipped at a
    /// daylight-saving change; the source reads it as its own software would.
    Local(NaiveDateTime),
    /// No change time at all.
    Null,
}

/// A record as the source holds it, for comparing with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruthRow {
    pub remote_id: String,
    /// The text the harness last wrote into the record, when it wrote one.
    pub marker: Option<String>,
    pub changed_at: Option<DateTime<Utc>>,
}

/// A source-side fault the harness may switch on. A subject answers `false` to
/// [`TestSource::fault`] for one its source cannot produce, and the harness says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceFault {
    /// Every request is refused as unauthenticated, as after a password change (or back on).
    RevokeCredentials(bool),
    /// Every open session or access token ends now, as a timeout does.
    ExpireSessions,
    /// The source's clock runs this many seconds ahead (negative: behind).
    ClockOffset(i64),
    /// These records are served so that they cannot be read; an empty list heals them.
    Corrupt(Vec<(ObjectType, String)>),
}

/// Starts sources of one system for the harness.
#[async_trait]
pub trait Subject: Send + Sync {
    /// The connector under test.
    fn connector(&self) -> Arc<dyn Connector>;

    /// Starts a fresh source in the IANA time zone `zone` (when the system has zones), holding
    /// only the master data the system needs (sites) and no records of the objects the
    /// harness writes.
    async fn start(&self, zone: Option<&str>) -> Arc<dyn TestSource>;
}

/// One running source under the harness's control.
#[async_trait]
pub trait TestSource: Send + Sync {
    /// The source's address as the connector's credentials name it.
    fn base_url(&self) -> String;

    /// Credentials that reach the source at `base_url` (the source's own, or a proxy's).
    fn credentials(&self, base_url: &str) -> Value;

    /// Whether the connector reaches the source over HTTP, so that the harness's proxy can
    /// sit between them. A source reached over another protocol (a SQL database) answers
    /// false: the checks that need the proxy's faults or hooks then say they skipped.
    fn through_proxy(&self) -> bool {
        true
    }

    /// Credentials of the same source that authenticate with a session (login, then a session
    /// cookie or access token), when the system has such a mode.
    fn session_credentials(&self, base_url: &str) -> Option<Value>;

    /// The transactional object the harness writes (e.g. work orders).
    fn transactional(&self) -> ObjectType;

    /// The master-data object the harness writes (e.g. assets).
    fn master(&self) -> ObjectType;

    /// Text found in the path or query of every request that reads `object` (e.g. its
    /// collection name), so that a proxy fault can aim at one stream.
    fn request_hint(&self, object: ObjectType) -> String;

    /// Creates a record carrying `marker` and returns its remote id.
    async fn create(&self, object: ObjectType, marker: &str, changed: ChangeTime) -> String;

    /// Changes a record's marker.
    async fn update(&self, object: ObjectType, remote_id: &str, marker: &str, changed: ChangeTime);

    /// Deletes a record from the source.
    async fn delete(&self, object: ObjectType, remote_id: &str);

    /// Every record of `object` the source holds now.
    async fn truth(&self, object: ObjectType) -> Vec<TruthRow>;

    /// Reads the marker back out of a unified record as the API serves it.
    fn marker_of(&self, object: ObjectType, record: &Value) -> Option<String>;

    /// Switches a source-side fault; returns `false` when this source cannot produce it.
    async fn fault(&self, fault: SourceFault) -> bool;

    /// Sessions the source opened so far (logins), when it counts them.
    async fn logins(&self) -> Option<u64>;
}
