//! Test peers: a Mosquitto broker of the test's own (generated configuration, free port,
//! optional password file, persistence in a temp dir) and the `pysparkplug` edge node that
//! `ci/setup.sh` installs, driven over its stdin.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use millrace_compliance::world::{Backend, World};
use millrace_connector::Registry;
use millrace_sparkplug::SparkplugConnector;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Finds an executable on the `PATH` or in the system folders Debian puts daemons in.
fn executable(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut folders: Vec<PathBuf> = std::env::split_paths(&path).collect();
    folders.extend(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from));
    folders
        .into_iter()
        .map(|folder| folder.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed: run crates/connectors/sparkplug/ci/setup.sh")
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Mosquitto broker run by the test.
pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts a broker; with `user`, only that login (and password) is accepted.
    pub async fn start(user: Option<(&str, &str)>) -> Mosquitto {
        Mosquitto::start_with(user, false).await
    }

    /// Starts a TLS-only broker whose certificates (a test CA, a server certificate for
    /// `localhost`, a client certificate) are made with `openssl`; it requires a client
    /// certificate signed by its CA. [`Mosquitto::tls_file`] reads them.
    pub async fn start_tls() -> Mosquitto {
        Mosquitto::start_with(None, true).await
    }

    /// Returns a PEM file the TLS broker was made with: `ca.pem`, `client.pem`, `client.key`.
    pub fn tls_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap()
    }

    async fn start_with(user: Option<(&str, &str)>, tls: bool) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        // Started as root, mosquitto drops to its own user, which must write its persistence
        // file and log here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = free_port();
        let mut conf = format!(
            "listener {port} 127.0.0.1\n\
             persistence true\n\
             persistence_location {}/\n\
             autosave_interval 1\n\
             queue_qos0_messages true\n\
             max_queued_messages 100000\n\
             log_dest file {}\n",
            dir.path().display(),
            dir.path().join("mosquitto.log").display(),
        );
        match user {
            Some((name, password)) => {
                let file = dir.path().join("passwords");
                let status = std::process::Command::new(executable("mosquitto_passwd"))
                    .args(["-b", "-c"])
                    .arg(&file)
                    .args([name, password])
                    .status()
                    .unwrap();
                assert!(status.success(), "mosquitto_passwd failed");
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
            None => conf.push_str("allow_anonymous true\n"),
        }
        if tls {
            make_certificates(dir.path());
            let file = |name: &str| dir.path().join(name).display().to_string();
            conf.push_str(&format!(
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
                file("ca.pem"),
                file("server.pem"),
                file("server.key"),
            ));
        }
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut broker = Mosquitto {
            port,
            dir,
            child: None,
        };
        broker.run().await;
        broker
    }

    async fn run(&mut self) {
        let child = Command::new(executable("mosquitto"))
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "mosquitto did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the broker as an operator would (SIGTERM: it saves its persistence file), then
    /// starts it again on the same port with the same state.
    pub async fn restart(&mut self) {
        let mut child = self.child.take().unwrap();
        let pid = child.id().unwrap();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("mosquitto did not stop")
            .unwrap();
        self.run().await;
    }

    /// Returns the broker's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

/// Makes a CA, a server certificate for `localhost` and a client certificate in `dir`.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed for the TLS test");
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    };
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=Millrace test CA",
    ];
    ca.extend(new_key);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(&ca);
    // Extensions make version 3 certificates, the only kind webpki accepts.
    std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, subject) in [("server", "/CN=localhost"), ("client", "/CN=millrace")] {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let mut request = vec!["req", "-subj", subject];
        request.extend(new_key);
        request.extend(["-keyout", &key, "-out", &csr]);
        openssl(&request);
        let mut sign = vec![
            "x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key",
        ];
        let ext = format!("{name}.ext");
        sign.extend([
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &ext,
        ]);
        openssl(&sign);
    }
    // Mosquitto reads its key after dropping to its own user.
    use std::os::unix::fs::PermissionsExt;
    let readable = std::fs::Permissions::from_mode(0o644);
    std::fs::set_permissions(dir.join("server.key"), readable).unwrap();
}

/// The `pysparkplug` edge node of `tests/support/edge_node.py`.
pub struct EdgeNode {
    child: Child,
    stdin: ChildStdin,
    events: Lines<BufReader<ChildStdout>>,
    /// Events read while waiting for another one, oldest first.
    pending: std::collections::VecDeque<Value>,
}

fn python() -> PathBuf {
    let peers = std::env::var_os("MILLRACE_PEERS_DIR")
        .map_or_else(|| PathBuf::from("/var/tmp/millrace-peers"), PathBuf::from);
    let python = peers.join("sparkplug/venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run crates/connectors/sparkplug/ci/setup.sh",
        python.display()
    );
    python
}

impl EdgeNode {
    /// Starts the script (not yet connected).
    pub fn spawn() -> EdgeNode {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/edge_node.py");
        let mut child = Command::new(python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let events = BufReader::new(child.stdout.take().unwrap()).lines();
        EdgeNode {
            child,
            stdin,
            events,
            pending: Default::default(),
        }
    }

    /// Sends one command.
    pub async fn send(&mut self, command: Value) {
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Returns the next event (waiting at most 20 s for one).
    pub async fn event(&mut self) -> Value {
        if let Some(event) = self.pending.pop_front() {
            return event;
        }
        let line = tokio::time::timeout(Duration::from_secs(20), self.events.next_line())
            .await
            .expect("the edge node said nothing for 20 s")
            .unwrap()
            .expect("the edge node exited");
        serde_json::from_str(&line).unwrap()
    }

    /// Waits for an event named `name` and returns it; other events wait for their turn.
    pub async fn expect(&mut self, name: &str) -> Value {
        self.expect_within(name, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("the edge node sent no `{name}` for 20 s"))
    }

    /// Like [`EdgeNode::expect`], giving up after `wait`.
    pub async fn expect_within(&mut self, name: &str, wait: Duration) -> Option<Value> {
        if let Some(at) = self.pending.iter().position(|event| event["event"] == name) {
            return self.pending.remove(at);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let line = tokio::time::timeout_at(deadline, self.events.next_line())
                .await
                .ok()?;
            let event: Value =
                serde_json::from_str(&line.unwrap().expect("the edge node exited")).unwrap();
            assert_ne!(event["event"], "error", "edge node failed: {event}");
            if event["event"] == name {
                return Some(event);
            }
            self.pending.push_back(event);
        }
    }

    /// Sends a command and waits for the event it answers with.
    pub async fn call(&mut self, command: Value, answer: &str) -> Value {
        self.send(command).await;
        self.expect(answer).await
    }

    /// Publishes one data message (`device` none for the node's own) and waits until the
    /// broker has it (QoS 1) or it left the client (QoS 0).
    pub async fn publish(&mut self, device: Option<&str>, metrics: Value, qos: u8) -> Value {
        let mut command = json!({"op": "data", "metrics": metrics, "qos": qos});
        if let Some(device) = device {
            command["device"] = json!(device);
        }
        let event = self.call(command, "published").await;
        event
    }

    pub async fn quit(mut self) {
        self.send(json!({"op": "quit"})).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// The metrics of the test line: a node metric and a device metric, both with aliases.
pub fn connect_command(broker: &Mosquitto, group: &str, node: &str) -> Value {
    json!({
        "op": "connect",
        "host": "127.0.0.1",
        "port": broker.port,
        "group": group,
        "node": node,
        "bd_seq": 1,
        "metrics": [{"name": "Speed", "alias": 1, "type": "Double", "value": 100.0}],
        "devices": {"press": [{"name": "Temp", "alias": 2, "type": "Int32", "value": 20}]},
    })
}

/// One node reading by alias, sampled at `timestamp` (ms).
pub fn speed(value: f64, timestamp: i64) -> Value {
    json!([{"alias": 1, "type": "Double", "value": value, "timestamp": timestamp}])
}

/// One device reading by alias, sampled at `timestamp` (ms).
pub fn temp(value: i32, timestamp: i64) -> Value {
    json!([{"alias": 2, "type": "Int32", "value": value, "timestamp": timestamp}])
}

/// A whole Millrace with only this connector, journaling into `journal_dir`.
pub async fn world(journal_dir: &Path) -> (World, Arc<SparkplugConnector>) {
    // The connector's logs, shown with a failing test's output (`RUST_LOG` to change).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "millrace_sparkplug=debug".into()),
        )
        .with_test_writer()
        .try_init();
    let connector = Arc::new(SparkplugConnector::new(journal_dir.to_path_buf()));
    let mut registry = Registry::new();
    registry.register(connector.clone());
    let world = World::start(Backend::Sqlite, registry, millrace_sparkplug::SYSTEM_ID).await;
    (world, connector)
}

/// Syncs until `done` holds for the records of `object` (read with the connection token),
/// and returns them; fails after two minutes (two busy cores can be slow).
pub async fn sync_until(
    world: &World,
    id: &str,
    token: &str,
    object: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        world.sync_and_wait(id).await;
        let records = world.list_all(token, object).await;
        if done(&records) {
            return records;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{object} never got there: {records:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Returns the (remote id, value) of each reading of `meter` (a remote id suffix such as
/// `#Speed`), sorted by remote id.
pub fn readings_of(records: &[Value], meter: &str) -> Vec<(String, f64)> {
    let mut readings: Vec<(String, f64)> = records
        .iter()
        .filter(|record| {
            record["remote_id"]
                .as_str()
                .unwrap()
                .split('@')
                .next()
                .unwrap()
                .ends_with(meter)
        })
        .map(|record| {
            (
                record["remote_id"].as_str().unwrap().to_owned(),
                record["value"].as_f64().unwrap(),
            )
        })
        .collect();
    readings.sort_by(|a, b| a.0.cmp(&b.0));
    readings
}
