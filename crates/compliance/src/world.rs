//! A whole Millrace for a test: a store, an engine with its scheduler and the real router on a
//! random port, driven over HTTP like a client would, plus the sandboxes of one system.
//!
//! Every world gets its own temp dir, SQLite file or PostgreSQL schema, ports and sandboxes, so
//! tests run in parallel. An unreachable PostgreSQL fails the PostgreSQL half: it is never
//! skipped.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use millrace_api::cursor::CursorCodec;
use millrace_api::ApiConfig;
use millrace_connector::{RunningSandbox, SandboxOptions};
use millrace_store::secrets::SecretBox;
use millrace_store::Store;
use millrace_sync::{hash_token, Engine, EngineConfig};
use millrace_webhooks::{DeliveryConfig, DeliveryWorker};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection as _, Executor as _};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The management key of every world.
pub const ADMIN_KEY: &str = "mra_e2e_admin_key_for_tests";
const CURSOR_SECRET: &[u8] = b"e2e cursor secret";
/// Longest wait for a sync to settle; generous for two busy cores.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Both backends, in the order tests run them.
    pub const ALL: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
}

/// One running Millrace (engine, scheduler, HTTP) over the harness's database.
struct Server {
    engine: Engine,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// A test's whole world. Dropping it without [`World::finish`] leaves its database behind.
pub struct World {
    /// Base URL of the Millrace API, e.g. `http://127.0.0.1:1234`.
    pub base: String,
    pub http: reqwest::Client,
    pub config: EngineConfig,
    /// The webhook worker's settings: retries after fractions of a second.
    pub webhooks: DeliveryConfig,
    /// The system `connect` and `sandbox` use.
    pub system: String,
    registry: millrace_connector::Registry,
    dir: tempfile::TempDir,
    database_url: String,
    postgres: Option<(String, String)>,
    server: Option<Server>,
    sandboxes: Vec<RunningSandbox>,
}

/// The engine settings tests start with: fast polling, reconciliation after every run.
pub fn test_config() -> EngineConfig {
    EngineConfig {
        page_size: 100,
        poll_interval: Duration::from_millis(50),
        reconcile_interval: Duration::ZERO,
        ..EngineConfig::default()
    }
}

/// The webhook worker settings tests start with: quick polling, three quick retries.
pub fn test_webhook_config() -> DeliveryConfig {
    DeliveryConfig {
        retry_schedule: vec![Duration::from_millis(200); 3],
        jitter: 0.0,
        poll_interval: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        lease: Duration::from_secs(10),
        ..DeliveryConfig::default()
    }
}

/// A fresh, empty PostgreSQL schema on the test server (`MILLRACE_TEST_POSTGRES_URL`, else the
/// local one): returns the URL that uses it, the admin URL and the schema name, for
/// [`drop_postgres_schema`].
pub async fn create_postgres_schema(prefix: &str) -> (String, String, String) {
    let admin_url = std::env::var("MILLRACE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|err| panic!("PostgreSQL at {admin_url} is required: {err}"));
    let schema = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
    (url, admin_url, schema)
}

/// Drops a schema [`create_postgres_schema`] made.
pub async fn drop_postgres_schema(admin_url: &str, schema: &str) {
    let mut admin = sqlx::AnyConnection::connect(admin_url).await.unwrap();
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
}

impl World {
    /// Creates a fresh database of `backend` and starts Millrace on it with `registry`;
    /// `system` is the system connections and sandboxes are made of.
    pub async fn start(
        backend: Backend,
        registry: millrace_connector::Registry,
        system: &str,
    ) -> World {
        World::start_with(backend, registry, system, test_config()).await
    }

    /// Like [`World::start`], with engine settings of the caller's.
    pub async fn start_with(
        backend: Backend,
        registry: millrace_connector::Registry,
        system: &str,
        config: EngineConfig,
    ) -> World {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, postgres) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}/millrace.db", dir.path().display()),
                None,
            ),
            Backend::Postgres => {
                let (url, admin_url, schema) = create_postgres_schema("mr_e2e").await;
                (url, Some((admin_url, schema)))
            }
        };
        let mut harness = World {
            base: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            config,
            webhooks: test_webhook_config(),
            system: system.to_owned(),
            registry,
            dir,
            database_url,
            postgres,
            server: None,
            sandboxes: Vec::new(),
        };
        harness.boot().await;
        harness
    }

    /// Opens the store and starts a new engine, scheduler and router on a new port.
    async fn boot(&mut self) {
        let store = Store::open(&self.database_url).await.unwrap();
        let secrets = SecretBox::load_or_create(None, self.dir.path()).unwrap();
        let engine = Engine::new(
            store.clone(),
            self.registry.clone(),
            secrets.clone(),
            self.config.clone(),
        );
        let api = ApiConfig {
            admin_key_hash: hash_token(ADMIN_KEY),
            cursor_secret: CURSOR_SECRET.to_vec(),
            rate_limit_per_second: 0,
        };
        let deliveries = DeliveryWorker::new(
            store,
            secrets,
            self.webhooks.clone(),
            std::sync::Arc::new(CursorCodec::new(CURSOR_SECRET)),
        );
        let app = millrace_api::router(engine.clone(), &api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.base = format!("http://{}", listener.local_addr().unwrap());

        let shutdown = CancellationToken::new();
        let http_shutdown = shutdown.clone();
        let http = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
                .await
                .unwrap();
        });
        let scheduler_engine = engine.clone();
        let scheduler_shutdown = shutdown.clone();
        let scheduler =
            tokio::spawn(async move { scheduler_engine.run_scheduler(scheduler_shutdown).await });
        let deliveries_shutdown = shutdown.clone();
        let deliveries = tokio::spawn(async move { deliveries.run(deliveries_shutdown).await });
        self.server = Some(Server {
            engine,
            shutdown,
            tasks: vec![http, scheduler, deliveries],
        });
    }

    /// Stops the running Millrace as `millrace serve` stops on Ctrl-C: requests end, running
    /// syncs are cancelled and the store is closed.
    pub async fn stop(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        server.shutdown.cancel();
        for task in server.tasks {
            task.await.unwrap();
        }
        server.engine.store().close().await;
    }

    /// Stops Millrace as `kill -9` would: its tasks are dropped mid-step, no lease is
    /// released and no run is finished; only what was committed survives.
    pub async fn crash(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        for task in &server.tasks {
            task.abort();
        }
        for task in server.tasks {
            let _ = task.await;
        }
        server.engine.abort_all_runs();
        server.engine.store().close().await;
    }

    /// Starts Millrace again after [`World::stop`] or [`World::crash`].
    pub async fn boot_again(&mut self) {
        if self.server.is_none() {
            self.boot().await;
        }
    }

    /// The running engine.
    pub fn engine(&self) -> &Engine {
        &self.server.as_ref().expect("Millrace is running").engine
    }

    /// Stops Millrace and starts a new process's worth of it on the same database and keys.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.boot().await;
    }

    /// Restarts with changed engine settings (before anything was connected, or to resume).
    pub async fn reconfigure(&mut self, change: impl FnOnce(&mut EngineConfig)) {
        change(&mut self.config);
        self.restart().await;
    }

    /// Stops everything and drops the test's PostgreSQL schema.
    pub async fn finish(mut self) {
        self.stop().await;
        for sandbox in &self.sandboxes {
            sandbox.shutdown.cancel();
        }
        if let Some((admin_url, schema)) = self.postgres.take() {
            drop_postgres_schema(&admin_url, &schema).await;
        }
    }

    // ---- sandboxes ------------------------------------------------------------------------

    /// Starts a sandbox of the world's system and returns its index for the other sandbox
    /// helpers.
    pub async fn sandbox(&mut self, options: SandboxOptions) -> usize {
        let connector = self
            .registry
            .get(&self.system)
            .unwrap_or_else(|| panic!("{} is not in the registry", self.system))
            .clone();
        let sandbox = connector
            .start_sandbox(options)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{} ships no sandbox", self.system));
        self.sandboxes.push(sandbox);
        self.sandboxes.len() - 1
    }

    /// Keeps a sandbox started elsewhere, to stop with the world; returns its index.
    pub fn adopt_sandbox(&mut self, sandbox: RunningSandbox) -> usize {
        self.sandboxes.push(sandbox);
        self.sandboxes.len() - 1
    }

    /// Starts a sandbox serving `count` generated work orders (and nothing else).
    pub async fn synthetic_sandbox(&mut self, count: u64) -> usize {
        self.sandbox(SandboxOptions {
            synthetic_work_orders: Some(count),
            ..SandboxOptions::default()
        })
        .await
    }

    /// Returns the credentials that connect to sandbox `index`.
    pub fn credentials(&self, index: usize) -> Value {
        self.sandboxes[index].credentials.clone()
    }

    /// Returns the base URL of sandbox `index`.
    pub fn sandbox_url(&self, index: usize) -> &str {
        &self.sandboxes[index].base_url
    }

    /// Calls the sandbox's control API (`path` below `/_sandbox/` at the root of its host) and
    /// returns status and body.
    pub async fn sandbox_control(
        &self,
        index: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let base = reqwest::Url::parse(&self.sandboxes[index].base_url).unwrap();
        let root = base.origin().ascii_serialization();
        let mut request = self.http.request(method, format!("{root}/_sandbox/{path}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Like [`World::sandbox_control`], asserting success.
    pub async fn sandbox_ok(&self, index: usize, method: Method, path: &str, body: Value) -> Value {
        let (status, answer) = self.sandbox_control(index, method, path, Some(body)).await;
        assert!(status.is_success(), "sandbox {path}: {status} {answer}");
        answer
    }

    // ---- the Millrace API -----------------------------------------------------------------

    /// Sends a request with `key` as bearer (none when `None`) and returns status, the
    /// `x-request-id` header, the content type and the body.
    pub async fn call(
        &self,
        key: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::read(request.send().await.unwrap()).await
    }

    /// Sends a request with the management key.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(Some(ADMIN_KEY), method, path, body).await
    }

    /// GETs a management path and asserts 200.
    pub async fn admin_get(&self, path: &str) -> Value {
        self.admin(Method::GET, path, None).await.ok()
    }

    /// GETs a path with a connection token and asserts 200.
    pub async fn token_get(&self, token: &str, path: &str) -> Value {
        self.call(Some(token), Method::GET, path, None).await.ok()
    }

    /// Connects a customer to a system with `credentials` and returns the id and token.
    pub async fn connect(
        &self,
        customer: &str,
        credentials: Value,
        lookback_days: u32,
    ) -> (String, String) {
        let body = json!({
            "customer_id": customer,
            "system": self.system,
            "deployment": "cloud",
            "credentials": credentials,
            "lookback_days": lookback_days,
        });
        let reply = self
            .admin(Method::POST, "/v1/connections", Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "connect: {}", reply.body);
        let id = reply.body["connection"]["id"].as_str().unwrap().to_owned();
        let token = reply.body["token"].as_str().unwrap().to_owned();
        (id, token)
    }

    /// Connects to sandbox `index` and waits for the initial sync to succeed.
    pub async fn connect_synced(&self, customer: &str, index: usize) -> (String, String) {
        let (id, token) = self.connect(customer, self.credentials(index), 30).await;
        let connection = self.wait_idle(&id).await;
        assert_all_idle(&connection);
        (id, token)
    }

    /// Returns a connection's runs, newest first.
    pub async fn runs(&self, id: &str) -> Vec<Value> {
        let runs = self.admin_get(&format!("/v1/connections/{id}/runs")).await;
        runs["data"].as_array().unwrap().clone()
    }

    /// Waits until the connection's sync settles: every stream idle with a successful sync
    /// time and no run running, or a stream failed, or the connection left `active`. Returns
    /// the connection.
    pub async fn wait_idle(&self, id: &str) -> Value {
        let started = Instant::now();
        loop {
            let connection = self.admin_get(&format!("/v1/connections/{id}")).await;
            let streams = connection["streams"].as_array().unwrap();
            let all_idle = streams.iter().all(|stream| {
                stream["state"] == "idle" && !stream["last_successful_sync_at"].is_null()
            });
            let any_failed = streams.iter().any(|stream| stream["state"] == "failed");
            let inactive = connection["status"] != "active";
            if all_idle || any_failed || inactive {
                let runs = self.runs(id).await;
                if runs.iter().all(|run| run["status"] != "running") {
                    return connection;
                }
            }
            assert!(
                started.elapsed() < SETTLE_TIMEOUT,
                "sync did not settle: {connection}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asks for a sync now and waits for the run it starts to finish; returns that run.
    pub async fn sync_and_wait(&self, id: &str) -> Value {
        // The run list is the newest runs only: a new run shows as a new newest id.
        let newest = |runs: &[Value]| runs.first().map(|run| run["id"].clone());
        let before = newest(&self.runs(id).await);
        let reply = self
            .admin(Method::POST, &format!("/v1/connections/{id}/sync"), None)
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "sync: {}", reply.body);
        let started = Instant::now();
        loop {
            let runs = self.runs(id).await;
            if newest(&runs) != before && runs[0]["status"] != "running" {
                self.wait_idle(id).await;
                return runs[0].clone();
            }
            assert!(
                started.elapsed() < SETTLE_TIMEOUT,
                "no run finished: {runs:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Lists every record of `object` with a token, following cursors; returns the records
    /// and the cursor after the last one.
    pub async fn list_all_from(
        &self,
        token: &str,
        object: &str,
        cursor: Option<&str>,
    ) -> (Vec<Value>, String) {
        self.page_through(Some(token), &format!("/v1/{object}"), cursor)
            .await
    }

    /// Lists every record of `object` with a token.
    pub async fn list_all(&self, token: &str, object: &str) -> Vec<Value> {
        self.list_all_from(token, object, None).await.0
    }

    /// Lists every record of a management path (which may carry a query) with the key.
    pub async fn admin_list_path(&self, path: &str) -> Vec<Value> {
        self.page_through(None, path, None).await.0
    }

    /// Lists every record of a connection's `object` with the management key.
    pub async fn admin_list_all(&self, id: &str, object: &str) -> Vec<Value> {
        let path = format!("/v1/connections/{id}/{object}");
        self.page_through(None, &path, None).await.0
    }

    async fn page_through(
        &self,
        token: Option<&str>,
        path: &str,
        cursor: Option<&str>,
    ) -> (Vec<Value>, String) {
        let key = token.unwrap_or(ADMIN_KEY);
        let mut cursor = cursor.map(str::to_owned);
        let mut records = Vec::new();
        loop {
            let mut url = reqwest::Url::parse(&format!("{}{path}", self.base)).unwrap();
            url.query_pairs_mut().append_pair("limit", "1000");
            if let Some(cursor) = &cursor {
                url.query_pairs_mut().append_pair("cursor", cursor);
            }
            let reply =
                Reply::read(self.http.get(url).bearer_auth(key).send().await.unwrap()).await;
            let page = reply.ok();
            records.extend(page["data"].as_array().unwrap().iter().cloned());
            cursor = Some(page["next_cursor"].as_str().unwrap().to_owned());
            if page["has_more"] != true {
                return (records, cursor.unwrap());
            }
        }
    }
}

/// An answer of the Millrace API.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub request_id: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
}

impl Reply {
    /// Reads a response.
    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let request_id = header("x-request-id");
        let content_type = header("content-type");
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            request_id,
            content_type,
            body,
        }
    }

    /// Asserts 200 and returns the body.
    pub fn ok(self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        self.body
    }

    /// Asserts a problem response with `status` and `code`, carrying a detail and the request
    /// id of the `x-request-id` header.
    pub fn assert_problem(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/problem+json")
        );
        assert!(
            !self.body["detail"].as_str().unwrap_or_default().is_empty(),
            "{}",
            self.body
        );
        let request_id = self
            .request_id
            .as_deref()
            .expect("every answer has x-request-id");
        assert_eq!(self.body["request_id"], request_id);
        assert_eq!(self.body["status"], status.as_u16());
    }
}

/// Asserts every stream of a connection is idle after a successful sync.
pub fn assert_all_idle(connection: &Value) {
    for stream in connection["streams"].as_array().unwrap() {
        assert_eq!(stream["state"], "idle", "{stream}");
        assert!(!stream["last_successful_sync_at"].is_null(), "{stream}");
        assert!(stream["last_error"].is_null(), "{stream}");
    }
}

/// Returns a stream of a connection by object slug.
pub fn stream<'a>(connection: &'a Value, object: &str) -> &'a Value {
    connection["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|stream| stream["object"] == object)
        .unwrap_or_else(|| panic!("no {object} stream in {connection}"))
}

/// Returns the remote ids of records, asserting none repeats.
pub fn unique_remote_ids(records: &[Value]) -> HashSet<String> {
    let mut ids = HashSet::new();
    for record in records {
        let remote_id = record["remote_id"].as_str().unwrap().to_owned();
        assert!(
            ids.insert(remote_id.clone()),
            "remote id {remote_id} listed twice"
        );
    }
    ids
}

/// Parses an RFC 3339 time of a JSON value.
pub fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(
        value
            .as_str()
            .unwrap_or_else(|| panic!("not a time: {value}")),
    )
    .unwrap()
    .with_timezone(&Utc)
}
