//! The Link page and the dashboard in a real headless Chromium, driven by playwright-core.
//!
//! Each test starts a whole Millrace with Maximo sandboxes, then runs one Node script of this
//! folder against it and checks through the API what the browser did. `crates/api/ci/setup.sh`
//! installs Debian's `chromium` and the pinned playwright-core; without them these tests fail
//! with a message that says to run it. Screenshots of every page go to
//! `$CARGO_TARGET_DIR/screenshots/<test>/` (default `target/screenshots`), and their paths are
//! printed.

#[path = "../support/mod.rs"]
#[allow(dead_code, unused_macros)]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use millrace_compliance::proxy::{Fault, FaultProxy, Rule};
use millrace_connector::SandboxOptions;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::receiver::Logs;
use support::{Backend, World, ADMIN_KEY};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Starts a world whose catalogue has every connector of the product, so the Link page shows
/// categories; connections are made to Maximo sandboxes. Source requests give up quickly, so
/// the Link page's unreachable and timeout messages come within seconds.
async fn start() -> World {
    millrace_connector::http::RetryPolicy::configure(millrace_connector::http::RetryPolicy {
        max_retries: 1,
        min_delay: Duration::from_millis(100),
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        ..millrace_connector::http::RetryPolicy::default()
    });
    let mut registry = millrace_connector::Registry::new();
    registry.register(millrace_ibm_maximo::connector());
    registry.register(millrace_trackwise::connector());
    registry.register(millrace_honeywell_forge::connector());
    let mut config = support::test_config();
    config.check_timeout = Duration::from_secs(20);
    World::start_with(Backend::Sqlite, registry, "ibm_maximo", config).await
}

/// Where this test's screenshots go.
fn screenshot_dir(test: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("screenshots").join(test);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `script` of this folder with `env`; returns the JSON object it prints last.
async fn run_script(script: &str, test: &str, env: &[(&str, String)]) -> Value {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        Path::new(CHROMIUM).exists() && folder.join("node_modules/playwright-core").exists(),
        "the browser tests need Chromium and playwright-core: run crates/api/ci/setup.sh"
    );
    let profile = tempfile::tempdir().unwrap();
    let screenshots = screenshot_dir(test);
    let mut command = tokio::process::Command::new("node");
    command
        .arg(folder.join(script))
        .current_dir(&folder)
        .env("CHROMIUM", CHROMIUM)
        .env("USER_DATA_DIR", profile.path())
        .env("SCREENSHOT_DIR", &screenshots)
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .expect("the browser script finished within 5 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    for line in stdout
        .lines()
        .filter(|line| line.starts_with("screenshot: "))
    {
        println!("{line}");
    }
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{stderr}"
    );
    let result = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .expect("the script prints its result as JSON");
    serde_json::from_str(result).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_flow_connects_maximo_and_the_code_works_once() {
    let logs = Logs::capture();
    let mut world = start().await;
    let sandbox = world.sandbox(SandboxOptions::default()).await;
    let credentials = world.credentials(sandbox);
    let api_key = credentials["api_key"].as_str().unwrap().to_owned();
    let base_url = credentials["base_url"].as_str().unwrap().to_owned();

    // A host that accepts connections and never answers, for the timeout message.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/maximo", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    // A port nothing listens on, for the unreachable message.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}/maximo", closed.local_addr().unwrap());
    drop(closed);

    // The operator's site, where the Link page sends the customer back.
    let operator = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!(
        "http://{}/millrace/callback",
        operator.local_addr().unwrap()
    );
    let site = axum::Router::new().route(
        "/millrace/callback",
        axum::routing::get(|| async { axum::response::Html("<h1>Operator callback</h1>") }),
    );
    let site = tokio::spawn(async move { axum::serve(operator, site).await.unwrap() });

    let reply = world
        .admin(
            Method::POST,
            "/v1/link-sessions",
            Some(json!({
                "customer_id": "acme-plant-7",
                "redirect_uri": callback,
                "state": "xyz-42",
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let link_url = reply.body["url"].as_str().unwrap().to_owned();
    let session_id = reply.body["link_session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let result = run_script(
        "link.mjs",
        "link",
        &[
            ("LINK_URL", link_url.clone()),
            ("CALLBACK", callback.clone()),
            ("BASE_URL", base_url.clone()),
            ("API_KEY", api_key.clone()),
            ("SILENT_URL", silent_url),
            ("CLOSED_URL", closed_url),
            ("SECRETS", json!([api_key, ADMIN_KEY]).to_string()),
        ],
    )
    .await;
    held.abort();
    site.abort();

    assert_eq!(result["state"], "xyz-42");
    let code = result["code"].as_str().unwrap().to_owned();
    assert!(code.starts_with("mrlc_"), "{code}");

    // The operator's back end exchanges the code once; the token reads the connection.
    let exchange = |code: String| {
        let world = &world;
        async move {
            world
                .admin(
                    Method::POST,
                    "/v1/link/token",
                    Some(json!({ "code": code })),
                )
                .await
        }
    };
    let reply = exchange(code.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let token = reply.body["token"].as_str().unwrap().to_owned();
    let connection = world.token_get(&token, "/v1/connection").await;
    assert_eq!(connection["customer_id"], "acme-plant-7");
    assert_eq!(connection["system"], "ibm_maximo");
    assert_eq!(
        connection["deployment"], "on_premise",
        "the script picked on premise"
    );
    let connection_id = connection["id"].as_str().unwrap().to_owned();
    let session = world
        .admin_get(&format!("/v1/link-sessions/{session_id}"))
        .await;
    assert_eq!(session["connection_id"], connection_id);
    exchange(code.clone())
        .await
        .assert_problem(StatusCode::CONFLICT, "code_used");

    let synced = world.wait_idle(&connection_id).await;
    support::assert_all_idle(&synced);
    let work_orders = world.list_all(&token, "work-orders").await;
    assert!(!work_orders.is_empty(), "the token reads the synced data");

    let text = logs.text();
    let url_secret = link_url.rsplit('/').next().unwrap();
    for (secret, what) in [
        (api_key.as_str(), "the API key"),
        ("wrong-password-123", "the wrong key typed"),
        (url_secret, "the link URL's secret"),
        (code.as_str(), "the code"),
        (token.as_str(), "the token"),
    ] {
        assert!(!text.contains(secret), "{what} appears in the logs");
    }
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_follows_a_sync_rotates_and_disconnects() {
    let logs = Logs::capture();
    let mut world = start().await;
    let sandbox = world.sandbox(SandboxOptions::default()).await;

    // An endpoint that refuses, registered first, so the dashboard has a failed delivery to retry.
    let reply = world
        .admin(
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["connection.created"]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let webhook_secret = reply.body["secret"].as_str().unwrap().to_owned();

    // The source answers slowly through a proxy, so the initial sync runs long enough to watch.
    let proxy = FaultProxy::start(world.sandbox_url(sandbox)).await;
    let mut credentials = world.credentials(sandbox);
    credentials["base_url"] = json!(proxy.route(world.sandbox_url(sandbox)));
    proxy.push(Rule::next(Fault::Slow(Duration::from_millis(300)), 60).after(1));
    let (connection_id, first_token) = world.connect("acme", credentials.clone(), 30).await;

    let result = run_script(
        "dashboard.mjs",
        "dashboard",
        &[
            ("BASE", world.base.clone()),
            ("ADMIN_KEY", ADMIN_KEY.to_owned()),
            ("CONNECTION_ID", connection_id.clone()),
            (
                "SECRETS",
                json!([
                    first_token,
                    webhook_secret,
                    credentials["api_key"],
                    ADMIN_KEY
                ])
                .to_string(),
            ),
        ],
    )
    .await;

    // The first token stopped at the rotation, the second at the disconnect.
    let rotated = result["rotated_token"].as_str().unwrap().to_owned();
    assert!(rotated.starts_with("mrc_") && rotated != first_token);
    for token in [&first_token, &rotated] {
        world
            .call(Some(token), Method::GET, "/v1/connection", None)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    }
    let connection = world
        .admin_get(&format!("/v1/connections/{connection_id}"))
        .await;
    assert_eq!(connection["status"], "disconnected");
    let runs = world.runs(&connection_id).await;
    assert!(
        runs.len() >= 2,
        "the initial sync and the one asked for: {runs:#?}"
    );
    assert!(
        result["saw_running"].as_bool().unwrap(),
        "the page showed the sync running"
    );
    let link_url = result["link_url"].as_str().unwrap();
    let sessions = world.admin_get("/v1/link-sessions").await;
    assert_eq!(sessions["data"][0]["customer_id"], "beta-mill");
    assert!(link_url.contains("/link/mrl_"), "{link_url}");

    let text = logs.text();
    for (secret, what) in [
        (first_token.as_str(), "the first token"),
        (rotated.as_str(), "the rotated token"),
        (webhook_secret.as_str(), "the webhook secret"),
        (ADMIN_KEY, "the management key"),
        (
            link_url.rsplit('/').next().unwrap(),
            "the link URL's secret",
        ),
    ] {
        assert!(!text.contains(secret), "{what} appears in the logs");
    }
    world.finish().await;
}
