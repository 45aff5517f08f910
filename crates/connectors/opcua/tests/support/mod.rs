//! The test plant: the Python asyncua server of `plant_server.py`, started on a free port and
//! driven over its standard input, and the truth it logs.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use millrace_connector::Registry;
use millrace_opcua::OpcUaConnector;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Where `ci/setup.sh` puts the virtualenv, unless `MILLRACE_OPCUA_VENV` says otherwise.
const DEFAULT_VENV: &str = "/var/tmp/millrace-peers/opcua-venv";

pub const USERNAME: &str = "operator";
pub const PASSWORD: &str = "plant-secret";

/// How a plant server is started.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlantOptions {
    pub no_history: bool,
    pub no_anonymous: bool,
}

/// A running plant server and its folder (certificate, history, value log).
pub struct Plant {
    pub endpoint: String,
    pub port: u16,
    pub dir: PathBuf,
    /// Removes the folder when the plant is dropped (not when it restarts).
    _folder: Arc<tempfile::TempDir>,
    options: PlantOptions,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

fn python() -> PathBuf {
    let venv = std::env::var("MILLRACE_OPCUA_VENV").unwrap_or_else(|_| DEFAULT_VENV.to_owned());
    let python = Path::new(&venv).join("bin/python");
    assert!(
        python.exists(),
        "the OPC UA test server is missing: {} does not exist; run \
         crates/connectors/opcua/ci/setup.sh",
        python.display()
    );
    python
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Plant {
    /// Starts a plant in a new folder on a free port.
    pub async fn start(options: PlantOptions) -> Plant {
        let folder = Arc::new(tempfile::tempdir().unwrap());
        Plant::start_in(folder, free_port(), options).await
    }

    async fn start_in(folder: Arc<tempfile::TempDir>, port: u16, options: PlantOptions) -> Plant {
        let dir = folder.path().to_path_buf();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/plant_server.py");
        let mut command = Command::new(python());
        command
            .arg(script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(&dir)
            .arg("--username")
            .arg(USERNAME)
            .arg("--password")
            .arg(PASSWORD)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if options.no_history {
            command.arg("--no-history");
        }
        if options.no_anonymous {
            command.arg("--no-anonymous");
        }
        let mut child = command
            .spawn()
            .expect("the OPC UA test server did not start");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(90), stdout.next_line())
            .await
            .expect("the OPC UA test server did not get ready in 90 s")
            .unwrap()
            .expect("the OPC UA test server exited before it was ready");
        let ready: Value = serde_json::from_str(&ready).unwrap();
        Plant {
            endpoint: ready["endpoint"].as_str().unwrap().to_owned(),
            port,
            dir,
            _folder: folder,
            options,
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one command and returns its answer, failing the test on an error.
    pub async fn command(&mut self, line: &str) -> Value {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("no answer to `{line}`"))
            .unwrap()
            .unwrap_or_else(|| panic!("the server exited on `{line}`"));
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert!(answer.get("error").is_none(), "`{line}`: {answer}");
        answer
    }

    /// Writes `rounds` rounds of new values to every variable.
    pub async fn tick(&mut self, rounds: u32) {
        self.command(&format!("tick {rounds}")).await;
    }

    /// Kills the server (as a crash or power loss would) and starts it again on the same port
    /// and folder: its history and last values survive, as on a real server.
    pub async fn restart(self) -> Plant {
        let Plant {
            mut child,
            _folder: folder,
            port,
            options,
            ..
        } = self;
        child.kill().await.unwrap();
        Plant::start_in(folder, port, options).await
    }

    /// Every value the server ever wrote, as (node id, source time).
    pub fn truth(&self) -> Vec<(String, DateTime<Utc>)> {
        let log = std::fs::read_to_string(self.dir.join("values.jsonl")).unwrap_or_default();
        log.lines()
            .map(|line| {
                let entry: Value = serde_json::from_str(line).unwrap();
                let time =
                    DateTime::parse_from_rfc3339(entry["source_timestamp"].as_str().unwrap())
                        .unwrap()
                        .with_timezone(&Utc);
                (entry["node"].as_str().unwrap().to_owned(), time)
            })
            .collect()
    }

    /// The reading ids Millrace should hold for the values of nodes whose browse name is in
    /// `names` (e.g. the historized ones).
    pub fn expected_readings(&self, names: &[&str]) -> BTreeSet<String> {
        self.truth()
            .into_iter()
            .filter(|(node, _)| names.iter().any(|name| node.ends_with(&format!(".{name}"))))
            .map(|(node, time)| {
                millrace_opcua::mapping::reading_id(
                    &millrace_opcua::client::parse_node(&node).unwrap(),
                    time,
                )
            })
            .collect()
    }

    /// Credentials for this plant: user name login, no security, the plant as browse root.
    pub fn credentials(&self) -> Value {
        json!({
            "endpoint": self.endpoint,
            "username": USERNAME,
            "password": PASSWORD,
            "browse_root": "ns=2;s=Plant",
            "state_variables": ["Running"],
        })
    }
}

/// The historized variables of the plant.
pub const HISTORIZED: [&str; 4] = ["Temperature", "Speed", "Counter", "Running"];

/// A registry with only the OPC UA connector, and that connector. Its client key pair goes to
/// one temp folder per test process (a static is never dropped, so the few kilobytes stay in
/// the temp folder; tests of one process share the key pair, as connections of one Millrace
/// do).
pub fn registry() -> (Registry, Arc<OpcUaConnector>) {
    static PKI: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let pki = PKI.get_or_init(|| tempfile::tempdir().unwrap());
    let connector = Arc::new(OpcUaConnector::new(pki.path().to_path_buf()));
    let mut registry = Registry::new();
    registry.register(connector.clone());
    (registry, connector)
}

/// The remote ids of records, asserting none is there twice.
pub fn remote_ids(records: &[Value]) -> BTreeSet<String> {
    let ids: Vec<String> = records
        .iter()
        .map(|record| record["remote_id"].as_str().unwrap().to_owned())
        .collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "a record is stored twice");
    unique
}

impl Plant {
    /// The reading ids of log entries.
    pub fn ids(entries: &[(String, DateTime<Utc>)]) -> BTreeSet<String> {
        entries
            .iter()
            .map(|(node, time)| {
                millrace_opcua::mapping::reading_id(
                    &millrace_opcua::client::parse_node(node).unwrap(),
                    *time,
                )
            })
            .collect()
    }
}

/// What the plant's state variables say happened, from its value log.
pub struct Truth {
    /// Per machine (asset node id), its last completed stop: (stopped at, running again at).
    pub stops: std::collections::HashMap<String, (DateTime<Utc>, DateTime<Utc>)>,
}

impl Truth {
    pub fn of(plant: &Plant) -> Truth {
        let log = std::fs::read_to_string(plant.dir.join("values.jsonl")).unwrap();
        let mut stopped: std::collections::HashMap<String, DateTime<Utc>> = Default::default();
        let mut stops = std::collections::HashMap::new();
        for line in log.lines() {
            let entry: Value = serde_json::from_str(line).unwrap();
            let node = entry["node"].as_str().unwrap();
            let Some(asset) = node.strip_suffix(".Running") else {
                continue;
            };
            let time = DateTime::parse_from_rfc3339(entry["source_timestamp"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc);
            if entry["value"] == false {
                stopped.entry(asset.to_owned()).or_insert(time);
            } else if let Some(start) = stopped.remove(asset) {
                stops.insert(asset.to_owned(), (start, time));
            }
        }
        Truth { stops }
    }
}
