//! Real processes: `kill -9` of `millrace serve` during the initial sync of 100,000 records, a
//! restart on the same database, and the sync resumed from its checkpoint with nothing lost or
//! duplicated, on SQLite and on PostgreSQL.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const WORK_ORDERS: u64 = 100_000;
const ADMIN_KEY: &str = "kill-test-admin-key";

/// A child process killed when dropped, so a failing test leaves nothing running.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn millrace() -> Command {
    Command::new(env!("CARGO_BIN_EXE_millrace"))
}

/// Starts a synthetic Maximo sandbox and returns it with its credentials.
fn start_sandbox() -> (Process, Value) {
    let mut child = millrace()
        .args(["sandbox", "ibm_maximo", "--listen", "127.0.0.1:0"])
        .args(["--synthetic-work-orders", &WORK_ORDERS.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the millrace binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the sandbox prints its ready line");
    let ready: Value = serde_json::from_str(&line).expect("the ready line is JSON");
    (Process(child), ready["credentials"].clone())
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts `millrace serve` and waits until it answers.
async fn start_server(port: u16, data_dir: &std::path::Path, database_url: &str) -> Process {
    let child = millrace()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--page-size", "200"])
        .env("MILLRACE_ADMIN_KEY", ADMIN_KEY)
        .env("MILLRACE_DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the millrace binary starts");
    let process = Process(child);
    let health = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::get(&health)
            .await
            .is_ok_and(|answer| answer.status().is_success())
        {
            return process;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("millrace serve did not answer within 30 seconds");
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        request = request.bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("the server answers");
        let status = answer.status();
        let json: Value = answer.json().await.expect("the answer is JSON");
        assert!(status.is_success(), "{path} answered {status}: {json}");
        json
    }

    async fn work_orders_stream(&self, id: &str) -> Value {
        let connection = self
            .call(reqwest::Method::GET, &format!("/v1/connections/{id}"), None)
            .await;
        connection["streams"]
            .as_array()
            .and_then(|streams| streams.iter().find(|s| s["object"] == "work-orders"))
            .cloned()
            .expect("the connection has a work-orders stream")
    }
}

async fn killed_initial_sync_resumes_without_loss_or_duplicates(database_url: &str) {
    let data_dir = tempfile::tempdir().unwrap();
    let (_sandbox, credentials) = start_sandbox();
    let port = free_port();
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
    };

    let mut server = start_server(port, data_dir.path(), database_url).await;
    let body = json!({
        "customer_id": "kill-test", "system": "ibm_maximo", "deployment": "cloud",
        "credentials": credentials, "lookback_days": 30,
    });
    let created = api
        .call(reqwest::Method::POST, "/v1/connections", Some(body))
        .await;
    let id = created["connection"]["id"].as_str().unwrap().to_owned();

    // Kill -9 once a few pages of work orders are stored, well before the end.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "the initial sync made no progress"
        );
        let stream = api.work_orders_stream(&id).await;
        let stored = stream["record_count"].as_u64().unwrap_or(0);
        assert!(
            stored < WORK_ORDERS,
            "the sync finished before it could be killed"
        );
        if stored >= 10_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    drop(server);

    // The restarted process sees that the lease holder died and takes the sync over at once,
    // instead of waiting out the 60-second lease.
    let _server = start_server(port, data_dir.path(), database_url).await;
    let restarted = Instant::now();
    loop {
        let runs = api
            .call(
                reqwest::Method::GET,
                &format!("/v1/connections/{id}/runs"),
                None,
            )
            .await;
        if runs["data"][0]["trigger"] == "resume" {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(20),
            "the killed sync was not resumed within 20 seconds of the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        assert!(Instant::now() < deadline, "the resumed sync did not finish");
        let stream = api.work_orders_stream(&id).await;
        if stream["state"] == "idle" && !stream["last_successful_sync_at"].is_null() {
            assert_eq!(stream["record_count"], WORK_ORDERS);
            break;
        }
        assert_ne!(
            stream["state"], "failed",
            "the resumed sync failed: {stream}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut remote_ids = HashSet::new();
    let mut listed = 0u64;
    let mut cursor = String::new();
    loop {
        let path = format!("/v1/connections/{id}/work-orders?limit=1000&cursor={cursor}");
        let page = api.call(reqwest::Method::GET, &path, None).await;
        for record in page["data"].as_array().unwrap() {
            listed += 1;
            remote_ids.insert(record["remote_id"].as_str().unwrap().to_owned());
        }
        cursor = page["next_cursor"].as_str().unwrap().to_owned();
        if page["has_more"] != true {
            break;
        }
    }
    assert_eq!(listed, WORK_ORDERS, "every work order is stored once");
    assert_eq!(
        remote_ids.len() as u64,
        WORK_ORDERS,
        "no work order is stored twice"
    );

    let runs = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/connections/{id}/runs"),
            None,
        )
        .await;
    let triggers: Vec<&str> = runs["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|run| run["trigger"].as_str())
        .collect();
    assert!(
        triggers.contains(&"resume"),
        "a run resumed the killed one: {triggers:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_killed_initial_sync_resumes_without_loss_or_duplicates() {
    let data_dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", data_dir.path().join("kill.db").display());
    killed_initial_sync_resumes_without_loss_or_duplicates(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_killed_initial_sync_resumes_without_loss_or_duplicates() {
    use millrace_compliance::world::{create_postgres_schema, drop_postgres_schema};
    let (url, admin_url, schema) = create_postgres_schema("kill").await;
    killed_initial_sync_resumes_without_loss_or_duplicates(&url).await;
    drop_postgres_schema(&admin_url, &schema).await;
}

/// SIGTERM (what service managers and container runtimes send) stops `millrace serve` cleanly
/// in the middle of a sync: the process exits by itself with success, and a restarted one
/// finishes the sync with every record stored once.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_serve_cleanly_mid_sync() {
    let data_dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", data_dir.path().join("term.db").display());
    let (_sandbox, credentials) = start_sandbox();
    let port = free_port();
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let mut server = start_server(port, data_dir.path(), &url).await;
    let body = json!({
        "customer_id": "term-test", "system": "ibm_maximo", "deployment": "cloud",
        "credentials": credentials, "lookback_days": 30,
    });
    let created = api
        .call(reqwest::Method::POST, "/v1/connections", Some(body))
        .await;
    let id = created["connection"]["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    while api.work_orders_stream(&id).await["state"] != "running" {
        assert!(Instant::now() < deadline, "the initial sync never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = server.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop within 30 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "serve exits cleanly on SIGTERM: {exit:?}");

    // A clean stop released the lease: the restarted process goes on at once.
    server = start_server(port, data_dir.path(), &url).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let stream = api.work_orders_stream(&id).await;
        if stream["state"] == "idle" && !stream["last_successful_sync_at"].is_null() {
            assert_eq!(stream["record_count"], json!(WORK_ORDERS), "{stream}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sync never finished: {stream}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(server);
}

/// A restart with another secret key is refused at once with a clear message, instead of
/// starting and then failing every sync on credentials it cannot open.
#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_a_secret_key_other_than_the_database_s() {
    let data_dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", data_dir.path().join("keys.db").display());
    let serve = |key: &str| {
        millrace()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir.path())
            .env("MILLRACE_ADMIN_KEY", ADMIN_KEY)
            .env("MILLRACE_DATABASE_URL", &url)
            .env("MILLRACE_SECRET_KEY", key)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the millrace binary starts")
    };
    let first_key = "11".repeat(32);
    let mut first = serve(&first_key);
    let mut line = String::new();
    BufReader::new(first.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening"), "the first start serves: {line}");
    drop(Process(first));

    let refused = serve(&"22".repeat(32)).wait_with_output().unwrap();
    assert!(!refused.status.success(), "a start with another key fails");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("secret key"), "{stderr}");
    assert!(!stderr.contains(&"22".repeat(32)), "the key is not printed");

    let mut again = serve(&first_key);
    let mut line = String::new();
    BufReader::new(again.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.contains("listening"),
        "the right key still serves: {line}"
    );
    drop(Process(again));
}
