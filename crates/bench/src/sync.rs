//! The initial-sync measurement: connect the sandbox through the management API and time the
//! `work-orders` stream until it is idle.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

use crate::child::ChildProcess;

/// How often the connection is polled; it bounds the timing error of a run.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How often progress is printed while the sync runs.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// What one initial sync measured.
#[derive(Debug, Clone)]
pub struct SyncFigures {
    /// Live work orders held by the stream when it became idle.
    pub records: u64,
    /// From sending the connect request until the poll that saw the stream idle.
    pub seconds: f64,
    pub peak_rss_bytes: u64,
    pub server_cpu_seconds: f64,
    pub sandbox_cpu_seconds: f64,
}

impl SyncFigures {
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.seconds
    }
}

/// The server under test, seen through its management API.
pub struct Management {
    pub http: reqwest::Client,
    pub base_url: String,
    pub admin_key: String,
}

impl Management {
    async fn call(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.bearer_auth(&self.admin_key).send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "{status}: {}",
                body["detail"].as_str().unwrap_or("no detail")
            );
        }
        Ok(body)
    }
}

/// Connects the sandbox, follows the sync and returns the figures and the connection's token.
pub async fn initial_sync(
    server: &Management,
    credentials: &Value,
    timeout: Duration,
    processes: (&ChildProcess, &ChildProcess),
) -> anyhow::Result<(SyncFigures, String)> {
    let (server_process, sandbox_process) = processes;
    let server_cpu_before = server_process.cpu_seconds()?;
    let sandbox_cpu_before = sandbox_process.cpu_seconds()?;

    let started = Instant::now();
    let body = json!({
        "customer_id": "bench",
        "system": "ibm_maximo",
        "deployment": "cloud",
        "name": "Maximo sandbox (synthetic work orders)",
        "credentials": credentials,
        "lookback_days": 30,
    });
    let url = format!("{}/v1/connections", server.base_url);
    let created = server
        .call(server.http.post(url).json(&body))
        .await
        .context("connecting")?;
    let id = created["connection"]["id"]
        .as_str()
        .context("no connection id")?
        .to_owned();
    let token = created["token"]
        .as_str()
        .context("no connection token")?
        .to_owned();

    let records = follow_work_orders(server, &id, started, timeout).await?;
    let seconds = started.elapsed().as_secs_f64();
    let figures = SyncFigures {
        records,
        seconds,
        peak_rss_bytes: server_process.peak_rss_bytes()?,
        server_cpu_seconds: server_process.cpu_seconds()? - server_cpu_before,
        sandbox_cpu_seconds: sandbox_process.cpu_seconds()? - sandbox_cpu_before,
    };
    Ok((figures, token))
}

/// Polls the connection until its `work-orders` stream has completed a sync and is idle;
/// returns the stream's record count.
async fn follow_work_orders(
    server: &Management,
    id: &str,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<u64> {
    let url = format!("{}/v1/connections/{id}", server.base_url);
    let mut last_progress = Instant::now();
    while started.elapsed() < timeout {
        let connection = server
            .call(server.http.get(&url))
            .await
            .context("polling")?;
        let stream = connection["streams"]
            .as_array()
            .and_then(|streams| {
                streams
                    .iter()
                    .find(|stream| stream["object"] == "work-orders")
            })
            .ok_or_else(|| anyhow!("the connection has no work-orders stream"))?;

        let completed = !stream["last_successful_sync_at"].is_null();
        match stream["state"].as_str().unwrap_or_default() {
            "idle" if completed => return Ok(stream["record_count"].as_u64().unwrap_or(0)),
            "failed" => bail!("the work-orders sync failed: {}", stream["last_error"]),
            _ => {}
        }
        if connection["status"] != "active" {
            bail!(
                "the connection is {}: {}",
                connection["status"],
                connection["status_reason"]
            );
        }

        if last_progress.elapsed() >= PROGRESS_INTERVAL {
            last_progress = Instant::now();
            println!(
                "    {:>5.0} s  {} work orders read",
                started.elapsed().as_secs_f64(),
                stream["progress"]["records_read"].as_u64().unwrap_or(0)
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    bail!("the work-orders stream was not idle within {timeout:?}")
}
