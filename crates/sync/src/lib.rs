//! The sync engine: the connection lifecycle, scheduled and on-demand runs, checkpoints,
//! reconciliation and cancellation.
//!
//! The engine is the only place that joins connectors and the store. A connector returns pages;
//! the engine hashes and stores each page together with its checkpoint, advances watermarks only
//! from source change times it has stored, and never marks anything deleted unless the run that
//! listed the source's ids completed. It knows nothing of HTTP routes.

mod error;
mod hash;
mod lifecycle;
mod run;
mod scheduler;
mod token;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millrace_connector::Registry;
use millrace_store::secrets::SecretBox;
use millrace_store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use error::SyncError;
pub use hash::content_hash;
pub use lifecycle::{ConnectRequest, Connected};
pub use token::{hash_token, looks_like_token, TOKEN_PREFIX};

/// Tuning of the engine; the defaults suit production.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Size of the operator's credit pool.
    pub credit_pool: u32,
    /// Records asked for per source page.
    pub page_size: u32,
    /// Connections synced at once by this process.
    pub max_concurrent_runs: usize,
    /// How long a claimed connection stays leased without renewal.
    pub lease: Duration,
    /// How often the scheduler looks for due connections when nothing wakes it.
    pub poll_interval: Duration,
    /// Minimum time between reconciliation passes of a stream (zero: after every complete run).
    pub reconcile_interval: Duration,
    /// Longest time a credential check at connect may take.
    pub check_timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            credit_pool: 100,
            page_size: 500,
            max_concurrent_runs: 4,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            reconcile_interval: Duration::from_secs(3600),
            check_timeout: Duration::from_secs(30),
        }
    }
}

/// The engine; cheap to clone, shared by the API and the scheduler.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    registry: Registry,
    secrets: SecretBox,
    config: EngineConfig,
    /// This process's worker id, written into leases.
    worker_id: String,
    /// Cancellation of the runs this process is executing, by connection id.
    running: Mutex<HashMap<String, CancellationToken>>,
    /// Connections whose next run was asked for through the API, for the run's trigger.
    requested: Mutex<HashSet<String>>,
    /// Wakes the scheduler when a sync becomes due before its next poll.
    wake: Notify,
    /// The tasks of this process's runs, so that [`Engine::abort_all_runs`] can stop them.
    tasks: Mutex<tokio::task::JoinSet<()>>,
}

impl Engine {
    /// Builds an engine. Start [`Engine::run_scheduler`] to have it sync anything.
    pub fn new(store: Store, registry: Registry, secrets: SecretBox, config: EngineConfig) -> Self {
        let worker_id = worker::new_worker_id();
        Engine {
            inner: Arc::new(Inner {
                store,
                registry,
                secrets,
                config,
                worker_id,
                running: Mutex::new(HashMap::new()),
                requested: Mutex::new(HashSet::new()),
                wake: Notify::new(),
                tasks: Mutex::new(tokio::task::JoinSet::new()),
            }),
        }
    }

    /// Returns the store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Returns the connector registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Returns the box that seals secrets at rest with the operator's key (credentials here,
    /// webhook signing secrets in `millrace-webhooks`).
    pub fn secrets(&self) -> &SecretBox {
        &self.inner.secrets
    }

    /// Returns the engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Stops every run of this process where it stands, as if the process were killed: no
    /// lease is released and no run is finished. What was committed stays; the leases expire
    /// and another worker resumes the runs from their checkpoints. For crash tests.
    pub fn abort_all_runs(&self) {
        self.inner.tasks.lock().unwrap().abort_all();
        self.inner.running.lock().unwrap().clear();
    }

    /// Returns whether this process is running a sync of the connection right now.
    pub fn is_running(&self, connection_id: &str) -> bool {
        self.inner
            .running
            .lock()
            .unwrap()
            .contains_key(connection_id)
    }
}
