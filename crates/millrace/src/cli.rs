//! The command line: what each subcommand takes, and how it runs.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use millrace_connector::SandboxOptions;
use millrace_sync::EngineConfig;
use millrace_webhooks::DeliveryConfig;
use serde_json::{json, Value};

use crate::client::Client;
use crate::server::{self, ServeOptions};

/// Millrace: connect an industrial system once, read its data through one API.
#[derive(Debug, Parser)]
#[command(name = "millrace", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the API and the sync workers.
    Serve(ServeArgs),
    /// Runs a system's sandbox server with realistic data and prints how to connect to it.
    Sandbox(SandboxArgs),
    /// Starts sandboxes and a server, connects them and walks through the whole flow.
    Demo(crate::demo::DemoArgs),
    /// Lists the catalogue of systems.
    Systems(ClientArgs),
    /// Manages connections.
    #[command(subcommand)]
    Connections(ConnectionsCommand),
    /// Asks for a sync of a connection now, optionally following its progress.
    Sync {
        id: String,
        /// Shows a progress bar until the run ends.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Lists a connection's sync runs.
    Runs {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Shows the credit pool and its ledger.
    Credits(ClientArgs),
    /// Writes every record of one object type of a connection as NDJSON.
    Export {
        id: String,
        /// Object type, e.g. `work-orders`.
        object: String,
        /// Includes records deleted in the source.
        #[arg(long)]
        include_deleted: bool,
        /// File to write; standard output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Runs the seeded soak of the compliance harness against the Maximo sandbox: random
    /// changes, syncs, crashes and faults, then checks the store equals the source.
    Soak(SoakArgs),
}

/// Options of `millrace soak`.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// How long the random workload runs, in seconds.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Seed of the workload and of the injected faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The store to soak: `sqlite` (a temporary file) or `postgres` (a temporary schema on
    /// `MILLRACE_TEST_POSTGRES_URL`, else the local server).
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgres"])]
    pub store: String,
}

impl Command {
    /// Returns the log level a subcommand shows by default.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Serve(_) => "info,sqlx=warn,tower_http=warn",
            // The demo's embedded MQTT broker logs every client that leaves as an error.
            Command::Demo(_) | Command::Sandbox(_) => "warn,rumqttd=off",
            _ => "warn",
        }
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "MILLRACE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Folder for the embedded database and the secret key file.
    #[arg(long, env = "MILLRACE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// `postgres://...` to use PostgreSQL instead of the embedded SQLite file.
    #[arg(long, env = "MILLRACE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The credit pool's size.
    #[arg(long, env = "MILLRACE_CREDITS", default_value_t = 100)]
    pub credits: u32,
    /// Requests per second allowed per token or key (0: no limit).
    #[arg(long, env = "MILLRACE_RATE_LIMIT", default_value_t = 100)]
    pub rate_limit: u32,
    /// Syncs run at once by this process.
    #[arg(long, env = "MILLRACE_WORKERS", default_value_t = 4)]
    pub workers: usize,
    /// Seconds between reconciliation passes that find deletions (0: every run).
    #[arg(long, env = "MILLRACE_RECONCILE_SECONDS", default_value_t = 3600)]
    pub reconcile_seconds: u64,
    /// Seconds a sync stays leased to this process without renewal; after a crash, another
    /// process (or this one restarted) resumes the sync once the lease has expired.
    #[arg(long, env = "MILLRACE_LEASE_SECONDS", default_value_t = 60)]
    pub lease_seconds: u64,
    /// Records asked of a source per page.
    #[arg(long, env = "MILLRACE_PAGE_SIZE", default_value_t = EngineConfig::default().page_size)]
    pub page_size: u32,
    /// Seconds to wait before each retry of a failed webhook delivery, comma-separated; after
    /// the last the delivery is `failed`. Default: 5,300,1800,7200,18000,36000,25200 (a day).
    #[arg(long, env = "MILLRACE_WEBHOOK_RETRY_SECONDS", value_delimiter = ',')]
    pub webhook_retry_seconds: Vec<u64>,
}

impl ServeArgs {
    /// Returns the server options, reading the keys from the environment.
    pub fn options(&self) -> ServeOptions {
        ServeOptions {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            admin_key: std::env::var("MILLRACE_ADMIN_KEY").ok(),
            secret_key: std::env::var("MILLRACE_SECRET_KEY").ok(),
            credit_pool: self.credits,
            rate_limit_per_second: self.rate_limit,
            engine: EngineConfig {
                max_concurrent_runs: self.workers.max(1),
                reconcile_interval: Duration::from_secs(self.reconcile_seconds),
                lease: Duration::from_secs(self.lease_seconds.max(1)),
                page_size: self.page_size.max(1),
                ..EngineConfig::default()
            },
            webhooks: self.webhook_config(),
        }
    }

    /// Returns the webhook worker's settings: the default schedule unless one is given.
    fn webhook_config(&self) -> DeliveryConfig {
        let defaults = DeliveryConfig::default();
        if self.webhook_retry_seconds.is_empty() {
            return defaults;
        }
        DeliveryConfig {
            retry_schedule: self
                .webhook_retry_seconds
                .iter()
                .map(|seconds| Duration::from_secs(*seconds))
                .collect(),
            ..defaults
        }
    }
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// System id from the catalogue, e.g. `ibm_maximo`.
    pub system: String,
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Folder of the public data sets (default: `../shared/data`, searched from here).
    #[arg(long, env = "MILLRACE_SHARED_DATA")]
    pub data: Option<PathBuf>,
    /// IANA time zone of the sandbox's server clock.
    #[arg(long, default_value = "America/New_York")]
    pub time_zone: String,
    /// Serves this many generated work orders instead of the real data (benchmarks).
    #[arg(long)]
    pub synthetic_work_orders: Option<u64>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The Millrace server.
    #[arg(long, env = "MILLRACE_URL", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// The management key.
    #[arg(long, env = "MILLRACE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: String,
}

impl ClientArgs {
    fn client(&self) -> anyhow::Result<Client> {
        Client::new(&self.server, &self.admin_key)
    }
}

#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// Lists connections.
    List {
        #[arg(long)]
        customer: Option<String>,
        #[arg(long)]
        system: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Connects a system; prints the connection and its token (shown once).
    Create {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        system: String,
        /// `cloud` or `on_premise`.
        #[arg(long, default_value = "cloud")]
        deployment: String,
        /// Credentials as JSON, or `@FILE` to read them from a file.
        #[arg(long)]
        credentials: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        lookback_days: Option<u32>,
        #[arg(long)]
        sync_interval_seconds: Option<u32>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Shows one connection with its streams.
    Get {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Disconnects: the token stops working, credits return, data stays.
    Disconnect {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Issues a new token; the old one stops working at once.
    RotateToken {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Deletes a connection's synced data.
    DeleteData {
        id: String,
        /// Confirms the deletion.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl Cli {
    /// Runs the chosen subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => serve(args).await,
            Command::Sandbox(args) => sandbox(args).await,
            Command::Soak(args) => soak(args).await,
            Command::Demo(args) => crate::demo::run(args).await,
            Command::Systems(client) => print(client.client()?.get("/v1/systems").await?),
            Command::Connections(command) => connections(command).await,
            Command::Sync { id, follow, client } => {
                let client = client.client()?;
                let before = newest_run(&client, &id).await?;
                client
                    .post(&format!("/v1/connections/{id}/sync"), None)
                    .await?;
                if follow {
                    follow_sync(&client, &id, before.as_deref()).await
                } else {
                    println!("sync of {id} queued");
                    Ok(())
                }
            }
            Command::Runs { id, client } => print(
                client
                    .client()?
                    .get(&format!("/v1/connections/{id}/runs"))
                    .await?,
            ),
            Command::Credits(client) => print(client.client()?.get("/v1/credits").await?),
            Command::Export {
                id,
                object,
                include_deleted,
                out,
                client,
            } => export(&client.client()?, &id, &object, include_deleted, out).await,
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let running = server::start(args.options()).await?;
    if let Some(key) = &running.generated_admin_key {
        println!("management key (shown once; set MILLRACE_ADMIN_KEY to choose your own): {key}");
    }
    println!("millrace listening on http://{}", running.address);
    let shutdown = running.shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        shutdown.cancel();
    });
    running.wait().await;
    Ok(())
}

async fn sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    let registry = crate::registry::registry();
    let connector = registry.get(&args.system).with_context(|| {
        format!(
            "unknown system `{}`; known: {}",
            args.system,
            registry.system_ids().join(", ")
        )
    })?;
    let options = SandboxOptions {
        listen: args.listen,
        data_dir: args.data,
        time_zone: Some(args.time_zone),
        seed: args.seed,
        synthetic_work_orders: args.synthetic_work_orders,
        empty: false,
    };
    let Some(sandbox) = connector.start_sandbox(options).await? else {
        bail!("the {} connector has no sandbox", args.system);
    };
    let ready = json!({
        "system": sandbox.system,
        "base_url": sandbox.base_url,
        "credentials": sandbox.credentials,
    });
    println!("{ready}");
    std::io::stdout().flush()?;

    let shutdown = sandbox.shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        shutdown.cancel();
    });
    let _ = sandbox.task.await;
    Ok(())
}

async fn connections(command: ConnectionsCommand) -> anyhow::Result<()> {
    match command {
        ConnectionsCommand::List {
            customer,
            system,
            status,
            client,
        } => {
            let mut query = Vec::new();
            for (name, value) in [
                ("customer_id", customer),
                ("system", system),
                ("status", status),
            ] {
                if let Some(value) = value {
                    query.push(format!("{name}={}", urlencode(&value)));
                }
            }
            let path = format!("/v1/connections?{}", query.join("&"));
            print(client.client()?.get(&path).await?)
        }
        ConnectionsCommand::Create {
            customer,
            system,
            deployment,
            credentials,
            name,
            lookback_days,
            sync_interval_seconds,
            client,
        } => {
            let text = match credentials.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read credentials from {path}"))?,
                None => credentials,
            };
            let credentials: Value =
                serde_json::from_str(&text).context("--credentials is not valid JSON")?;
            let mut body = json!({
                "customer_id": customer,
                "system": system,
                "deployment": deployment,
                "credentials": credentials,
            });
            for (field, value) in [
                ("name", name.map(Value::from)),
                ("lookback_days", lookback_days.map(Value::from)),
                (
                    "sync_interval_seconds",
                    sync_interval_seconds.map(Value::from),
                ),
            ] {
                if let Some(value) = value {
                    body[field] = value;
                }
            }
            print(client.client()?.post("/v1/connections", Some(body)).await?)
        }
        ConnectionsCommand::Get { id, client } => print(
            client
                .client()?
                .get(&format!("/v1/connections/{id}"))
                .await?,
        ),
        ConnectionsCommand::Disconnect { id, client } => print(
            client
                .client()?
                .post(&format!("/v1/connections/{id}/disconnect"), None)
                .await?,
        ),
        ConnectionsCommand::RotateToken { id, client } => print(
            client
                .client()?
                .post(&format!("/v1/connections/{id}/token"), None)
                .await?,
        ),
        ConnectionsCommand::DeleteData { id, yes, client } => {
            if !yes {
                bail!("this deletes every synced record of {id}; run again with --yes to confirm");
            }
            print(
                client
                    .client()?
                    .delete(&format!("/v1/connections/{id}/data"))
                    .await?,
            )
        }
    }
}

/// Returns the id of the connection's newest run, if it has one.
pub async fn newest_run(client: &Client, id: &str) -> anyhow::Result<Option<String>> {
    let runs = client.get(&format!("/v1/connections/{id}/runs")).await?;
    Ok(runs["data"][0]["id"].as_str().map(str::to_owned))
}

/// Shows a progress bar until a run newer than `after_run` has finished, then the streams.
pub async fn follow_sync(client: &Client, id: &str, after_run: Option<&str>) -> anyhow::Result<()> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("  {spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .expect("the template is valid"),
    );
    let path = format!("/v1/connections/{id}");
    let deadline = std::time::Instant::now() + Duration::from_secs(6 * 3600);
    while std::time::Instant::now() < deadline {
        let connection = client.get(&path).await?;
        let streams = connection["streams"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let progress = |field: &str| -> u64 {
            streams
                .iter()
                .map(|s| s["progress"][field].as_u64().unwrap_or(0))
                .sum()
        };
        let (read, expected) = (progress("records_read"), progress("records_expected"));
        bar.set_length(expected.max(read));
        bar.set_position(read);
        let running: Vec<&str> = streams
            .iter()
            .filter(|stream| stream["state"] == "running")
            .filter_map(|stream| stream["object"].as_str())
            .collect();
        bar.set_message(running.join(", "));

        let runs = client.get(&format!("/v1/connections/{id}/runs")).await?;
        let newest = &runs["data"][0];
        let is_new = newest["id"]
            .as_str()
            .is_some_and(|run| Some(run) != after_run);
        if is_new && newest["status"] != "running" {
            break;
        }
        if connection["status"] != "active" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    bar.finish_and_clear();

    let connection = client.get(&path).await?;
    for stream in connection["streams"].as_array().into_iter().flatten() {
        println!(
            "  {:<24} {:<8} {:>8} records{}",
            stream["object"].as_str().unwrap_or_default(),
            stream["state"].as_str().unwrap_or_default(),
            stream["record_count"],
            stream["last_error"]
                .as_str()
                .map(|e| format!("  error: {e}"))
                .unwrap_or_default(),
        );
    }
    Ok(())
}

async fn export(
    client: &Client,
    id: &str,
    object: &str,
    include_deleted: bool,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut writer: Box<dyn Write> = match &out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut cursor = String::new();
    let mut count = 0u64;
    loop {
        let path = format!(
            "/v1/connections/{id}/{object}?limit=1000&include_deleted={include_deleted}&cursor={}",
            urlencode(&cursor)
        );
        let page = client.get(&path).await?;
        for record in page["data"].as_array().into_iter().flatten() {
            serde_json::to_writer(&mut writer, record)?;
            writer.write_all(b"\n")?;
            count += 1;
        }
        cursor = page["next_cursor"].as_str().unwrap_or_default().to_owned();
        if page["has_more"] != true {
            break;
        }
    }
    writer.flush()?;
    if out.is_some() {
        eprintln!("exported {count} {object} records");
    }
    Ok(())
}

fn print(value: Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

/// Percent-encodes a query value.
pub fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `millrace soak`: prints what the soak did, ending with `mismatches: N`; fails when N > 0.
async fn soak(args: SoakArgs) -> anyhow::Result<()> {
    use millrace_compliance::soak::{soak, SoakOptions};
    use millrace_compliance::world::Backend;

    let backend = if args.store == "postgres" {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    eprintln!(
        "soaking {} for {} s with seed {}",
        args.store, args.seconds, args.seed
    );
    let report = soak(
        &millrace_ibm_maximo::compliance::subject(),
        &SoakOptions {
            duration: std::time::Duration::from_secs(args.seconds),
            seed: args.seed,
            backend,
        },
    )
    .await;
    println!("{}", report.render());
    if !report.mismatches.is_empty() {
        bail!("the soak found {} mismatches", report.mismatches.len());
    }
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM (what service managers and container runtimes send to stop a
/// process), so that both end the process cleanly: runs stop at a checkpoint, leases are
/// released.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops cleanly");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
