//! A real Tryton server for tests: `trytond` from the virtualenv that `ci/setup.sh` fills,
//! serving a fresh copy of a template database on a free port.
//!
//! Creating a Tryton database takes about half a minute on two cores, so `ci/fixture.py`
//! builds each template once (the first caller builds under a lock, the others wait and copy)
//! into a folder beside the virtualenv; every test then copies one file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use millrace_connector::http::RetryPolicy;
use serde_json::{json, Value};

/// The virtualenv `ci/setup.sh` installs into, unless `MILLRACE_TRYTON_VENV` names another.
pub const DEFAULT_VENV: &str = "/var/tmp/millrace-peers/tryton-venv";
/// The database name every test server serves.
pub const DATABASE: &str = "millrace";
/// Tryton's administrator in every template.
pub const ADMIN: (&str, &str) = ("admin", "admin-password");
/// The user connections log in as, with every group (a read-only role would do).
pub const USER: (&str, &str) = ("millrace", "millrace-password");

/// Runs the `trytond` script named by the first argument in this Python process, with the
/// other arguments, and exits as soon as standard input reaches its end.
const SERVE_UNTIL_STDIN_CLOSES: &str = "\
import os, runpy, sys, threading
def watch():
    sys.stdin.read()
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
";

/// Which template database a server starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// The modules, a company with its warehouse and the users; no other records.
    Empty,
    /// The empty template plus public data from `shared/data` loaded through Tryton's API.
    Seeded,
}

impl Template {
    fn kind(self) -> &'static str {
        match self {
            Template::Empty => "empty",
            Template::Seeded => "seeded",
        }
    }
}

/// A running `trytond`, stopped (and its database removed) when dropped.
pub struct TrytonServer {
    /// The server's address, e.g. `http://127.0.0.1:41234`, as credentials name it.
    pub base_url: String,
    child: tokio::process::Child,
    dir: tempfile::TempDir,
}

impl TrytonServer {
    /// Starts a server on a fresh copy of `template`. Panics, saying what to run, when Tryton
    /// is not installed.
    pub async fn start(template: Template) -> TrytonServer {
        let venv = venv();
        let trytond = venv.join("bin/trytond");
        assert!(
            trytond.exists(),
            "Tryton is not installed: {} is missing. Run crates/connectors/tryton/ci/setup.sh \
             (or set MILLRACE_TRYTON_VENV to a virtualenv that has trytond 8.0).",
            trytond.display()
        );
        let template_file = build_template(&venv, template).await;

        let dir = tempfile::tempdir().expect("a temporary folder");
        tokio::fs::copy(
            &template_file,
            dir.path().join(format!("{DATABASE}.sqlite")),
        )
        .await
        .expect("the template database is copied");
        let port = free_port();
        let config = dir.path().join("trytond.conf");
        tokio::fs::write(
            &config,
            format!(
                "[database]\nuri = sqlite://\npath = {}\n\n[web]\nlisten = 127.0.0.1:{port}\n",
                dir.path().display()
            ),
        )
        .await
        .expect("the server configuration is written");
        let log = std::fs::File::create(dir.path().join("trytond.log")).expect("a log file");
        // trytond runs inside a Python that also waits for the end of its standard input, a
        // pipe from this process: when the test process ends, however it ends, the pipe
        // closes and the server exits with it instead of lingering.
        let child = tokio::process::Command::new(venv.join("bin/python"))
            .arg("-c")
            .arg(SERVE_UNTIL_STDIN_CLOSES)
            .arg(&trytond)
            .arg("-c")
            .arg(&config)
            .arg("-d")
            .arg(DATABASE)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("{} did not start: {err}", trytond.display()));
        let mut server = TrytonServer {
            base_url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        server.wait_ready().await;
        server
    }

    /// The SQLite file the server serves, for checks that read or stamp it directly.
    pub fn database_file(&self) -> PathBuf {
        self.dir.path().join(format!("{DATABASE}.sqlite"))
    }

    /// Credentials of the sync user, as `POST /v1/connections` takes them, for `base_url`
    /// (the server's own, or a proxy's in front of it).
    pub fn credentials(&self, base_url: &str) -> Value {
        json!({
            "base_url": base_url,
            "database": DATABASE,
            "username": USER.0,
            "password": USER.1,
        })
    }

    /// A JSON-RPC client logged in as Tryton's administrator, to change data as users do.
    pub fn admin(&self) -> crate::client::TrytonClient {
        let credentials = json!({
            "base_url": self.base_url,
            "database": DATABASE,
            "username": ADMIN.0,
            "password": ADMIN.1,
        });
        // Not the process's configured policy: a test harness shortens that to fault-test the
        // connector, and the administrator's writes are not under test.
        let policy = RetryPolicy {
            request_timeout: Duration::from_secs(60),
            ..RetryPolicy::default()
        };
        crate::client::TrytonClient::with_policy(
            &serde_json::from_value(credentials).expect("credentials are an object"),
            policy,
        )
        .expect("the administrator's credentials are well formed")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("trytond.log")).unwrap_or_default()
    }

    /// Waits until the server answers, then logs in once: the first call to a database loads
    /// Tryton's pool of modules, which takes seconds, and no test's request timeout should
    /// pay for it.
    async fn wait_ready(&mut self) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("an HTTP client");
        let started = Instant::now();
        let version = json!({"id": 0, "method": "common.server.version", "params": []});
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("trytond exited with {status}:\n{}", self.log());
            }
            // Any HTTP answer means the server listens; this call needs no database.
            if http
                .post(format!("{}/", self.base_url))
                .json(&version)
                .send()
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "trytond did not answer within a minute:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let login = json!({
            "id": 0,
            "method": "common.db.login",
            "params": [ADMIN.0, {"password": ADMIN.1}],
        });
        let answer = http
            .post(format!("{}/{DATABASE}/rpc/", self.base_url))
            .json(&login)
            .send()
            .await
            .unwrap_or_else(|err| panic!("trytond did not load its database: {err}"));
        assert!(
            answer.status().is_success(),
            "the administrator cannot log in ({}):\n{}",
            answer.status(),
            self.log()
        );
    }
}

/// The virtualenv holding trytond.
pub fn venv() -> PathBuf {
    std::env::var_os("MILLRACE_TRYTON_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VENV))
}

/// Builds (once) and returns the template database of `template`.
async fn build_template(venv: &Path, template: Template) -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let templates = std::env::var_os("MILLRACE_TRYTON_TEMPLATES")
        .map(PathBuf::from)
        .unwrap_or_else(|| venv.join("millrace-templates"));
    let mut command = tokio::process::Command::new(venv.join("bin/python"));
    command
        .arg(crate_dir.join("ci/fixture.py"))
        .arg("--dir")
        .arg(&templates)
        .arg("--kind")
        .arg(template.kind())
        .stdin(Stdio::null());
    if template == Template::Seeded {
        command.arg("--data").arg(shared_data(crate_dir));
    }
    let output = command
        .output()
        .await
        .expect("the template builder (ci/fixture.py) starts");
    assert!(
        output.status.success(),
        "building the {} Tryton template failed:\n{}",
        template.kind(),
        String::from_utf8_lossy(&output.stderr)
    );
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    PathBuf::from(path)
}

/// The public data sets: `MILLRACE_SHARED_DATA`, else `../shared/data` beside the checkout.
fn shared_data(crate_dir: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("MILLRACE_SHARED_DATA") {
        return PathBuf::from(dir);
    }
    let beside_checkout = crate_dir.join("../../../../shared/data");
    assert!(
        beside_checkout.is_dir(),
        "the public data sets are missing: expected ../shared/data beside the checkout, or \
         MILLRACE_SHARED_DATA"
    );
    beside_checkout
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}
