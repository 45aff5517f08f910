//! The connection lifecycle: connect, rotate, disconnect, delete data, sync on demand.

use chrono::Utc;
use millrace_connector::Credentials;
use millrace_model::{Connection, ConnectionStatus, Deployment};
use millrace_store::NewConnection;
use serde_json::{Map, Value};

use crate::token::{hash_token, new_token};
use crate::{Engine, SyncError};

/// Bounds of the settings a connection may choose.
const LOOKBACK_DAYS: std::ops::RangeInclusive<u32> = 1..=3650;
const SYNC_INTERVAL_SECONDS: std::ops::RangeInclusive<u32> = 60..=7 * 24 * 3600;
const DEFAULT_LOOKBACK_DAYS: u32 = 30;
const DEFAULT_SYNC_INTERVAL_SECONDS: u32 = 15 * 60;

/// What a caller asks `connect` for.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    pub customer_id: String,
    pub system: String,
    pub deployment: Deployment,
    pub credentials: Map<String, Value>,
    pub name: Option<String>,
    pub lookback_days: Option<u32>,
    pub sync_interval_seconds: Option<u32>,
}

/// A new connection and its token, which is shown this once.
#[derive(Debug, Clone)]
pub struct Connected {
    pub connection: Connection,
    pub token: String,
}

impl Engine {
    /// Connects a system: validates the request, checks the credentials live, reserves credits,
    /// stores the sealed credentials and returns the connection with its token. Nothing is
    /// created when any step fails. The initial sync is due at once.
    pub async fn connect(&self, request: ConnectRequest) -> Result<Connected, SyncError> {
        let customer_id = request.customer_id.trim();
        if customer_id.is_empty() || customer_id.len() > 200 {
            return Err(SyncError::InvalidRequest(
                "`customer_id` must be a non-empty string of at most 200 characters".into(),
            ));
        }
        // Control characters would let a caller forge lines in text logs and break exports.
        if customer_id.chars().any(char::is_control) {
            return Err(SyncError::InvalidRequest(
                "`customer_id` must not contain control characters".into(),
            ));
        }
        if let Some(name) = &request.name {
            if name.chars().count() > 200 || name.chars().any(char::is_control) {
                return Err(SyncError::InvalidRequest(
                    "`name` must be at most 200 characters, without control characters".into(),
                ));
            }
        }
        let lookback_days = request.lookback_days.unwrap_or(DEFAULT_LOOKBACK_DAYS);
        if !LOOKBACK_DAYS.contains(&lookback_days) {
            return Err(SyncError::InvalidRequest(format!(
                "`lookback_days` must be between {} and {}, not {lookback_days}",
                LOOKBACK_DAYS.start(),
                LOOKBACK_DAYS.end()
            )));
        }
        let interval = request
            .sync_interval_seconds
            .unwrap_or(DEFAULT_SYNC_INTERVAL_SECONDS);
        if !SYNC_INTERVAL_SECONDS.contains(&interval) {
            return Err(SyncError::InvalidRequest(format!(
                "`sync_interval_seconds` must be between {} and {}, not {interval}",
                SYNC_INTERVAL_SECONDS.start(),
                SYNC_INTERVAL_SECONDS.end()
            )));
        }
        let connector =
            self.inner
                .registry
                .get(&request.system)
                .ok_or_else(|| SyncError::UnknownSystem {
                    system: request.system.clone(),
                    known: self.inner.registry.system_ids().join(", "),
                })?;
        let system = connector.system().clone();

        let unknown: Vec<&str> = request
            .credentials
            .keys()
            .map(String::as_str)
            .filter(|name| {
                !system
                    .credential_fields
                    .iter()
                    .any(|field| field.name == *name)
            })
            .collect();
        if !unknown.is_empty() {
            let known: Vec<&str> = system
                .credential_fields
                .iter()
                .map(|field| field.name.as_str())
                .collect();
            return Err(SyncError::InvalidRequest(format!(
                "unknown credential field(s) {} for {}; its fields are: {}",
                unknown.join(", "),
                system.id,
                known.join(", ")
            )));
        }
        let credentials = Credentials::new(request.credentials);
        let source = connector
            .open(&credentials)
            .map_err(SyncError::from_check)?;
        let check = tokio::time::timeout(self.inner.config.check_timeout, source.check()).await;
        match check {
            Err(_elapsed) => {
                return Err(SyncError::SourceTimedOut(format!(
                    "no answer within {} seconds",
                    self.inner.config.check_timeout.as_secs()
                )))
            }
            Ok(result) => result.map_err(SyncError::from_check)?,
        }

        let token = new_token();
        let plaintext = serde_json::to_vec(&credentials).expect("a JSON map always serialises");
        let name = request
            .name
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| format!("{} ({customer_id})", system.name));
        let new = NewConnection {
            id: format!("conn_{}", uuid::Uuid::now_v7().simple()),
            customer_id: customer_id.to_owned(),
            system: system.id.clone(),
            deployment: request.deployment,
            name,
            credits: system.credit_cost(request.deployment),
            lookback_days,
            sync_interval_seconds: interval,
            sealed_credentials: self.inner.secrets.seal(&plaintext),
            token_hash: hash_token(&token),
            objects: system.readable_objects().collect(),
            created_at: Utc::now(),
        };
        let connection = self
            .inner
            .store
            .create_connection(new, self.inner.config.credit_pool)
            .await?;
        tracing::info!(
            connection_id = %connection.id,
            system = %connection.system,
            customer_id = %connection.customer_id,
            credits = connection.credits,
            "connection created"
        );

        self.inner.wake.notify_one();
        Ok(Connected { connection, token })
    }

    /// Returns a connection with its streams and their live progress.
    pub async fn connection(&self, id: &str) -> Result<Connection, SyncError> {
        self.inner
            .store
            .connection(id)
            .await?
            .ok_or_else(|| SyncError::ConnectionNotFound(id.to_owned()))
    }

    /// Disconnects at once: the token stops working, a running sync is cancelled, schedules
    /// stop and the credits return. The data stays. Disconnecting twice is not an error.
    pub async fn disconnect(&self, id: &str) -> Result<Connection, SyncError> {
        // The run stops before its next page instead of queueing writes ahead of the disconnect.
        self.cancel_local_run(id);
        let connection = self.inner.store.disconnect(id, Utc::now()).await?;
        tracing::info!(connection_id = %id, "connection disconnected");
        Ok(connection)
    }

    /// Issues a new token for an active connection; the old one stops working at once.
    pub async fn rotate_token(&self, id: &str) -> Result<String, SyncError> {
        let connection = self.connection(id).await?;
        if connection.status != ConnectionStatus::Active {
            return Err(SyncError::ConnectionInactive(id.to_owned()));
        }
        let token = new_token();
        self.inner
            .store
            .rotate_token(id, &hash_token(&token))
            .await?;
        tracing::info!(connection_id = %id, "connection token rotated");
        Ok(token)
    }

    /// Deletes the synced data of a connection that is no longer active (disconnected, or
    /// waiting for reauthorisation). An active connection must be disconnected first: its
    /// data is what its token serves.
    pub async fn delete_data(&self, id: &str) -> Result<u64, SyncError> {
        let connection = self.connection(id).await?;
        if connection.status == ConnectionStatus::Active {
            return Err(SyncError::ConnectionActive(id.to_owned()));
        }
        self.wait_for_local_run(id).await;
        let deleted = self.inner.store.delete_data(id).await?;
        tracing::info!(connection_id = %id, records = deleted, "connection data deleted");
        Ok(deleted)
    }

    /// Asks for a sync of an active connection now.
    pub async fn sync_now(&self, id: &str) -> Result<(), SyncError> {
        let connection = self.connection(id).await?;
        if connection.status != ConnectionStatus::Active {
            return Err(SyncError::ConnectionInactive(id.to_owned()));
        }
        self.inner.store.request_sync(id, Utc::now()).await?;
        self.inner.requested.lock().unwrap().insert(id.to_owned());
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Waits (a bounded time) until this process no longer runs a sync of the connection, so
    /// that no page of a cancelled run lands after what the caller does next.
    async fn wait_for_local_run(&self, id: &str) {
        for _ in 0..200 {
            if !self.is_running(id) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tracing::warn!(connection_id = %id, "cancelled sync still running after 10 seconds");
    }

    fn cancel_local_run(&self, id: &str) {
        if let Some(cancel) = self.inner.running.lock().unwrap().get(id) {
            cancel.cancel();
        }
    }
}
