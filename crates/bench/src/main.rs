//! `millrace-bench`: initial-sync throughput, peak memory and list-endpoint latency of the real
//! `millrace` binary, against the Maximo sandbox's synthetic work orders, on SQLite and
//! PostgreSQL. See `BENCHMARKS.md` at the repository root.
//!
//! The sandbox and the server run as two child processes, so the server's peak resident set
//! holds Millrace alone.

mod child;
mod load;
mod postgres;
mod sync;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};
use tokio::process::Command;

use crate::child::ChildProcess;
use crate::load::{LoadFigures, LoadPlan};
use crate::postgres::FreshDatabase;
use crate::sync::{Management, SyncFigures};

/// Aim: records stored per second by an initial sync, on either store.
const AIM_RECORDS_PER_SECOND: f64 = 20_000.0;
/// Aim: peak resident set of the server, at this many work orders.
const AIM_PEAK_RSS_MIB: f64 = 200.0;
const AIM_PEAK_RSS_AT_RECORDS: u64 = 1_000_000;
/// Aim: 99th percentile latency of a work-order list page.
const AIM_P99_MS: f64 = 20.0;

const MIB: f64 = 1024.0 * 1024.0;

/// Measures Millrace's initial sync and list endpoint against the Maximo sandbox.
#[derive(Debug, Parser)]
#[command(name = "millrace-bench", version, about)]
struct Args {
    /// Work orders the sandbox serves (and the sync stores).
    #[arg(long, default_value_t = 200_000)]
    work_orders: u64,
    /// Stores to measure, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sqlite,postgres"
    )]
    stores: Vec<StoreKind>,
    /// PostgreSQL server; a fresh database is created on it for the run and dropped after.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_url: String,
    /// Seconds of measured list load per store.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds of list load before the measured window (not counted).
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Concurrent list clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Records per list page (`limit`).
    #[arg(long, default_value_t = 100)]
    list_limit: u32,
    /// Records the engine asks the source for per page (`millrace serve --page-size`); the
    /// server's default when absent.
    #[arg(long)]
    page_size: Option<u32>,
    /// Longest an initial sync may take before the run fails.
    #[arg(long, default_value_t = 1800)]
    sync_timeout_seconds: u64,
    /// The `millrace` binary; default: next to this one.
    #[arg(long)]
    millrace_bin: Option<PathBuf>,
    /// Keeps the temporary folder (data and child logs) after the run.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    Sqlite,
    Postgres,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
        }
    }
}

/// Everything measured on one store.
struct StoreRun {
    store: StoreKind,
    sync: SyncFigures,
    /// Share of the machine's CPU time busy during the sync (all processes, both cores).
    machine_busy: f64,
    list: LoadFigures,
    /// Server CPU time per counted list request, warm-up included in the time.
    list_server_cpu_ms_per_request: f64,
    peak_rss_after_list_bytes: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let millrace = match &args.millrace_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("millrace"),
    };
    if !millrace.is_file() {
        bail!(
            "no millrace binary at {}; build it (cargo build --release -p millrace) or pass \
             --millrace-bin",
            millrace.display()
        );
    }
    let workdir = tempfile::Builder::new()
        .prefix("millrace-bench-")
        .tempdir()?;
    let machine = machine();
    println!(
        "millrace-bench: {} work orders, {} list clients x {} s, {} cores, {:.1} GiB memory",
        args.work_orders, args.clients, args.seconds, machine.cores, machine.memory_gib
    );
    println!("  binary {}", millrace.display());
    println!("  data and logs in {}", workdir.path().display());

    let mut runs = Vec::new();
    let mut failure = None;
    for &store in &args.stores {
        println!("\n== {}", store.name());
        match run_store(&args, store, &millrace, workdir.path()).await {
            Ok(run) => runs.push(run),
            Err(err) => {
                failure = Some(err.context(format!("the {} run failed", store.name())));
                break;
            }
        }
    }

    println!("\n== aims");
    let aims = aims(&args, &runs);
    for aim in &aims {
        println!("  {}", aim.line());
    }
    println!("{}", summary_json(&args, &machine, &runs, &aims));

    if args.keep || failure.is_some() {
        let kept = workdir.keep();
        eprintln!("kept {}", kept.display());
    }
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Runs the sandbox and a server on `store`, syncs, loads the list endpoint, stops both.
async fn run_store(
    args: &Args,
    store: StoreKind,
    millrace: &Path,
    workdir: &Path,
) -> anyhow::Result<StoreRun> {
    let database = match store {
        StoreKind::Sqlite => None,
        StoreKind::Postgres => {
            let database = FreshDatabase::create(&args.postgres_url).await?;
            println!("  database {} created", database.name());
            Some(database)
        }
    };
    let result = measure_store(args, store, millrace, workdir, database.as_ref()).await;
    if let Some(database) = database {
        let name = database.name().to_owned();
        match database.drop_database().await {
            Ok(()) => println!("  database {name} dropped"),
            Err(err) => eprintln!("warning: {err:#}"),
        }
    }
    result
}

async fn measure_store(
    args: &Args,
    store: StoreKind,
    millrace: &Path,
    workdir: &Path,
    database: Option<&FreshDatabase>,
) -> anyhow::Result<StoreRun> {
    let folder = workdir.join(store.name());
    std::fs::create_dir_all(&folder)?;

    let mut sandbox_command = millrace_command(millrace);
    sandbox_command.args(["sandbox", "ibm_maximo", "--listen", "127.0.0.1:0"]);
    sandbox_command.args(["--synthetic-work-orders", &args.work_orders.to_string()]);
    let (sandbox, credentials) = ChildProcess::spawn(
        "sandbox",
        sandbox_command,
        &folder.join("sandbox.log"),
        |line| {
            let ready: Value = serde_json::from_str(line).ok()?;
            Some(ready.get("credentials")?.clone())
        },
    )
    .await?;
    println!(
        "  sandbox pid {} at {}",
        sandbox.pid(),
        credentials["base_url"]
    );

    let admin_key = format!("mra_bench_{:016x}", rand::random::<u64>());
    let mut server_command = millrace_command(millrace);
    server_command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&folder);
    if let Some(database) = database {
        server_command.args(["--database-url", &database.url]);
    }
    if let Some(page_size) = args.page_size {
        server_command.args(["--page-size", &page_size.to_string()]);
    }
    server_command
        .env("MILLRACE_ADMIN_KEY", &admin_key)
        .env("MILLRACE_RATE_LIMIT", "0");
    let (server, base_url) = ChildProcess::spawn(
        "server",
        server_command,
        &folder.join("server.log"),
        |line| {
            line.strip_prefix("millrace listening on ")
                .map(str::to_owned)
        },
    )
    .await?;
    println!("  server pid {} at {base_url}", server.pid());

    let management = Management {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        base_url: base_url.clone(),
        admin_key,
    };
    println!("  initial sync of {} work orders", args.work_orders);
    let busy_before = machine_cpu_ticks()?;
    let timeout = Duration::from_secs(args.sync_timeout_seconds);
    let synced = sync::initial_sync(&management, &credentials, timeout, (&server, &sandbox))
        .await
        .with_context(|| {
            format!(
                "server {}, sandbox {}",
                server.log_hint(),
                sandbox.log_hint()
            )
        })?;
    let (sync, token) = synced;
    let machine_busy = machine_cpu_ticks()?.busy_share_since(&busy_before);
    print_sync(&sync, machine_busy, args.work_orders);

    println!(
        "  list load: {} clients, limit {}, {} s (after {} s warm-up)",
        args.clients, args.list_limit, args.seconds, args.warmup_seconds
    );
    let plan = LoadPlan {
        base_url,
        token,
        clients: args.clients,
        page_size: args.list_limit,
        warmup: Duration::from_secs(args.warmup_seconds),
        measured: Duration::from_secs(args.seconds),
    };
    let server_cpu_before = server.cpu_seconds()?;
    let list = load::run(&plan).await?;
    let list_server_cpu_ms_per_request =
        (server.cpu_seconds()? - server_cpu_before) * 1000.0 / list.requests.max(1) as f64;
    let peak_rss_after_list_bytes = server.peak_rss_bytes()?;
    println!(
        "    {:.0} requests/s ({} requests), p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms, \
         {} errors, {} walks wrapped",
        list.requests_per_second(),
        list.requests,
        list.p50_ms,
        list.p99_ms,
        list.max_ms,
        list.errors,
        list.wraps
    );
    println!(
        "    server CPU {list_server_cpu_ms_per_request:.2} ms per request, peak RSS after the \
         load {:.1} MiB",
        peak_rss_after_list_bytes as f64 / MIB
    );

    server.stop().await;
    sandbox.stop().await;
    Ok(StoreRun {
        store,
        sync,
        machine_busy,
        list,
        list_server_cpu_ms_per_request,
        peak_rss_after_list_bytes,
    })
}

/// A command running the `millrace` binary, without any `MILLRACE_*` setting of this
/// environment leaking into it.
fn millrace_command(millrace: &Path) -> Command {
    let mut command = Command::new(millrace);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MILLRACE_") {
            command.env_remove(name);
        }
    }
    command
}

fn print_sync(sync: &SyncFigures, machine_busy: f64, expected: u64) {
    println!(
        "    {} records in {:.1} s: {:.0} records/s, server peak RSS {:.1} MiB",
        sync.records,
        sync.seconds,
        sync.records_per_second(),
        sync.peak_rss_bytes as f64 / MIB
    );
    println!(
        "    CPU during the sync: server {:.1} s, sandbox {:.1} s, whole machine {:.0}% busy",
        sync.server_cpu_seconds,
        sync.sandbox_cpu_seconds,
        machine_busy * 100.0
    );
    if sync.records != expected {
        println!(
            "    warning: {expected} work orders served, {} stored",
            sync.records
        );
    }
}

/// One aim and whether a run met it.
struct Aim {
    name: &'static str,
    store: StoreKind,
    value: f64,
    target: String,
    /// `None` when the run cannot say (too few records for the memory aim).
    met: Option<bool>,
}

impl Aim {
    fn line(&self) -> String {
        let verdict = match self.met {
            Some(true) => "met".to_owned(),
            Some(false) => "MISSED".to_owned(),
            None => format!("not judged (needs --work-orders {AIM_PEAK_RSS_AT_RECORDS})"),
        };
        format!(
            "{:<8} {:<20} {:>10.2} (aim {}): {verdict}",
            self.store.name(),
            self.name,
            self.value,
            self.target
        )
    }
}

fn aims(args: &Args, runs: &[StoreRun]) -> Vec<Aim> {
    let mut aims = Vec::new();
    for run in runs {
        let records_per_second = run.sync.records_per_second();
        aims.push(Aim {
            name: "records_per_second",
            store: run.store,
            value: records_per_second,
            target: format!(">= {AIM_RECORDS_PER_SECOND}"),
            met: Some(records_per_second >= AIM_RECORDS_PER_SECOND),
        });
        let peak_rss_mib = run.sync.peak_rss_bytes.max(run.peak_rss_after_list_bytes) as f64 / MIB;
        aims.push(Aim {
            name: "peak_rss_mib",
            store: run.store,
            value: peak_rss_mib,
            target: format!("< {AIM_PEAK_RSS_MIB} at {AIM_PEAK_RSS_AT_RECORDS} records"),
            met: (args.work_orders >= AIM_PEAK_RSS_AT_RECORDS)
                .then_some(peak_rss_mib < AIM_PEAK_RSS_MIB),
        });
        let p99_met = run.list.p99_ms < AIM_P99_MS && run.list.requests > 0;
        aims.push(Aim {
            name: "list_p99_ms",
            store: run.store,
            value: run.list.p99_ms,
            target: format!("< {AIM_P99_MS}"),
            met: Some(p99_met),
        });
    }
    aims
}

fn summary_json(args: &Args, machine: &Machine, runs: &[StoreRun], aims: &[Aim]) -> Value {
    let runs: Vec<Value> = runs
        .iter()
        .map(|run| {
            json!({
                "store": run.store.name(),
                "sync": {
                    "records": run.sync.records,
                    "seconds": round(run.sync.seconds, 2),
                    "records_per_second": round(run.sync.records_per_second(), 0),
                    "peak_rss_mib": round(run.sync.peak_rss_bytes as f64 / MIB, 1),
                    "server_cpu_seconds": round(run.sync.server_cpu_seconds, 2),
                    "sandbox_cpu_seconds": round(run.sync.sandbox_cpu_seconds, 2),
                    "server_cpu_us_per_record": round(
                        run.sync.server_cpu_seconds * 1e6 / run.sync.records.max(1) as f64,
                        0
                    ),
                    "sandbox_cpu_us_per_record": round(
                        run.sync.sandbox_cpu_seconds * 1e6 / run.sync.records.max(1) as f64,
                        0
                    ),
                    "machine_busy_share": round(run.machine_busy, 2),
                },
                "list": {
                    "requests": run.list.requests,
                    "requests_per_second": round(run.list.requests_per_second(), 0),
                    "p50_ms": round(run.list.p50_ms, 2),
                    "p99_ms": round(run.list.p99_ms, 2),
                    "max_ms": round(run.list.max_ms, 2),
                    "errors": run.list.errors,
                    "wraps": run.list.wraps,
                    "server_cpu_ms_per_request": round(run.list_server_cpu_ms_per_request, 2),
                },
                "peak_rss_mib_after_list": round(run.peak_rss_after_list_bytes as f64 / MIB, 1),
            })
        })
        .collect();
    let aims: Vec<Value> = aims
        .iter()
        .map(|aim| {
            json!({
                "store": aim.store.name(),
                "name": aim.name,
                "value": round(aim.value, 2),
                "target": aim.target,
                "met": aim.met,
            })
        })
        .collect();
    json!({
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "machine": { "cores": machine.cores, "memory_gib": round(machine.memory_gib, 1) },
        "work_orders": args.work_orders,
        "engine_page_size": args.page_size,
        "list_clients": args.clients,
        "list_limit": args.list_limit,
        "list_seconds": args.seconds,
        "runs": runs,
        "aims": aims,
    })
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// The machine the figures were taken on.
struct Machine {
    cores: usize,
    memory_gib: f64,
}

fn machine() -> Machine {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| {
            let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0);
    Machine {
        cores,
        memory_gib: memory_kib as f64 / (1024.0 * 1024.0),
    }
}

/// The machine's cumulative CPU ticks from `/proc/stat`.
struct CpuTicks {
    busy: u64,
    total: u64,
}

impl CpuTicks {
    fn busy_share_since(&self, before: &CpuTicks) -> f64 {
        let total = self.total.saturating_sub(before.total);
        if total == 0 {
            return 0.0;
        }
        self.busy.saturating_sub(before.busy) as f64 / total as f64
    }
}

fn machine_cpu_ticks() -> anyhow::Result<CpuTicks> {
    let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let line = stat.lines().next().unwrap_or_default();
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...; idle and iowait are not busy.
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Ok(CpuTicks {
        busy: total - idle,
        total,
    })
}
