//! A webhook receiver that verifies deliveries with an independent implementation (the Python
//! `standardwebhooks` package; see `webhook_receiver.py`), and a capture of this process's logs.

use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The receiver script beside this file.
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/webhook_receiver.py"
);

/// A running receiver; the process ends when this is dropped.
pub struct Receiver {
    /// Where to register it: `http://127.0.0.1:PORT/hooks`.
    pub url: String,
    base: String,
    http: reqwest::Client,
    _process: Child,
}

impl Receiver {
    /// Starts a receiver and waits until it listens.
    pub async fn start() -> Receiver {
        let mut process = Command::new("python3")
            .arg(SCRIPT)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs the webhook receiver");
        let stdout = process.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the receiver starts within 30 seconds (is `standardwebhooks` installed?)")
            .unwrap()
            .expect("the receiver prints its port");
        let ready: Value = serde_json::from_str(&line).unwrap();
        let base = format!("http://127.0.0.1:{}", ready["port"]);
        Receiver {
            url: format!("{base}/hooks"),
            base,
            http: reqwest::Client::new(),
            _process: process,
        }
    }

    /// Sets the secret deliveries are verified with and how many next ones get a 500.
    pub async fn control(&self, secret: &str, fail_first: u32) {
        let response = self
            .http
            .post(format!("{}/_control", self.base))
            .json(&json!({ "secret": secret, "fail_first": fail_first }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    /// Returns what the receiver got, oldest first: `webhook_id`, `verified`, `error`,
    /// `answered` (the status it answered) and the verified `payload`.
    pub async fn received(&self) -> Vec<Value> {
        let response = self
            .http
            .get(format!("{}/_received", self.base))
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    /// Waits until `done` holds for what was received; returns it.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let received = self.received().await;
            if done(&received) {
                return received;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "waited in vain for {what}; received: {received:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Returns the verified payloads of type `event_type` among deliveries answered 204.
pub fn accepted<'a>(received: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    received
        .iter()
        .filter(|delivery| delivery["answered"] == 204)
        .map(|delivery| &delivery["payload"])
        .filter(|payload| payload["type"] == event_type)
        .collect()
}

/// Everything this process logs, at debug level and above, from the first call on.
#[derive(Clone)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Starts capturing (once per process; later calls share the capture).
    pub fn capture() -> Logs {
        static LOGS: OnceLock<Logs> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs(Arc::new(Mutex::new(Vec::new())));
            let writer = logs.clone();
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .try_init()
                .expect("no other subscriber is installed in this test process");
            logs
        })
        .clone()
    }

    /// Returns the text captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
