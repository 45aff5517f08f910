//! `millrace demo`: the whole product in one command, on the Maximo sandbox's real data.
//!
//! It starts three Maximo sandboxes (in three time zones), a server on embedded SQLite, connects
//! two customers (one with two Maximo instances), follows the initial syncs, changes records in
//! a sandbox, runs an incremental sync and shows exactly what changed through the cursor, then
//! disconnects one connection and shows its token refused and its data kept. Then it starts an
//! OPC UA plant in this process and syncs it. It keeps serving until Ctrl-C and prints what to
//! try.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use millrace_connector::{RunningSandbox, SandboxOptions};
use millrace_sync::EngineConfig;
use reqwest::Method;
use serde_json::{json, Value};

use crate::cli::{follow_sync, newest_run};
use crate::client::Client;
use crate::server::{self, ServeOptions};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address the Millrace server listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Folder for the demo's database; it is emptied at start.
    #[arg(long, default_value = "data/demo")]
    pub data_dir: PathBuf,
    /// Folder of the public data sets (default: `../shared/data`, searched from here).
    #[arg(long, env = "MILLRACE_SHARED_DATA")]
    pub shared_data: Option<PathBuf>,
    /// Stops after the walk-through instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

/// One sandbox and the connection made to it.
struct Instance {
    customer: &'static str,
    name: &'static str,
    deployment: &'static str,
    sandbox: RunningSandbox,
    connection_id: String,
    token: String,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    step("Starting three IBM Maximo sandboxes loaded with public data");
    let registry = crate::registry::registry();
    let maximo = registry
        .get("ibm_maximo")
        .context("the Maximo connector is not built in")?;
    let plan = [
        (
            "acme-mining",
            "Acme Mining - Pilbara Maximo",
            "cloud",
            "Australia/Perth",
        ),
        (
            "northwind-energy",
            "Northwind - Auckland Maximo",
            "cloud",
            "Pacific/Auckland",
        ),
        (
            "northwind-energy",
            "Northwind - Houston Maximo",
            "on_premise",
            "America/Chicago",
        ),
    ];
    let mut sandboxes = Vec::new();
    for (index, (_, name, _, zone)) in plan.iter().enumerate() {
        let options = SandboxOptions {
            data_dir: args.shared_data.clone(),
            time_zone: Some((*zone).to_owned()),
            seed: index as u64 + 1,
            ..SandboxOptions::default()
        };
        let sandbox = maximo
            .start_sandbox(options)
            .await?
            .ok_or_else(|| anyhow!("the Maximo connector has no sandbox"))?;
        println!("  {name}: {} (server time zone {zone})", sandbox.base_url);
        sandboxes.push(sandbox);
    }

    let line = start_sparkplug_plant(&args).await?;

    step("Starting Millrace on embedded SQLite");
    if args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("cannot empty {}", args.data_dir.display()))?;
    }
    let admin_key = format!("mra_demo_{}", hex::encode(rand::random::<[u8; 16]>()));
    let server = server::start(ServeOptions {
        listen: args.listen.clone(),
        data_dir: args.data_dir.clone(),
        database_url: None,
        admin_key: Some(admin_key.clone()),
        secret_key: None,
        credit_pool: 100,
        rate_limit_per_second: 0,
        engine: EngineConfig {
            reconcile_interval: Duration::ZERO,
            ..EngineConfig::default()
        },
        webhooks: millrace_webhooks::DeliveryConfig::default(),
    })
    .await?;
    let base = format!("http://{}", server.address);
    println!(
        "  API: {base}/v1   reference: {base}/docs   data: {}",
        args.data_dir.display()
    );
    let admin = Client::new(&base, &admin_key)?;

    step("Connecting two customers (Northwind has two Maximo instances)");
    let mut instances = Vec::new();
    for ((customer, name, deployment, _), sandbox) in plan.into_iter().zip(sandboxes) {
        let body = json!({
            "customer_id": customer,
            "system": "ibm_maximo",
            "deployment": deployment,
            "name": name,
            "credentials": sandbox.credentials,
            "lookback_days": 30,
        });
        let created = admin.post("/v1/connections", Some(body)).await?;
        let connection_id = created["connection"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let token = created["token"].as_str().unwrap_or_default().to_owned();
        println!(
            "  {customer:<17} {name:<28} {deployment:<10} {} credits  {connection_id}",
            created["connection"]["credits"]
        );
        instances.push(Instance {
            customer,
            name,
            deployment,
            sandbox,
            connection_id,
            token,
        });
    }
    let credits = admin.get("/v1/credits").await?;
    println!(
        "  credits: {} used of {}",
        credits["used"], credits["total"]
    );

    step("Initial sync: master data whole, work orders and requests of the last 30 days");
    for instance in &instances {
        println!("  {}", instance.name);
        follow_sync(&admin, &instance.connection_id, None).await?;
    }

    let first = &instances[0];
    let unified = admin.with_key(&first.token);
    let cursor = latest_cursor(&unified, "work-orders").await?;

    step("Changing records in the Acme sandbox");
    let changed = change_sandbox(&first.sandbox, &unified).await?;
    for line in &changed {
        println!("  {line}");
    }

    step("Incremental sync: only what changed since the watermark");
    let before = newest_run(&admin, &first.connection_id).await?;
    unified.post("/v1/connection/sync", None).await?;
    follow_sync(&admin, &first.connection_id, before.as_deref()).await?;
    let runs = admin
        .get(&format!("/v1/connections/{}/runs", first.connection_id))
        .await?;
    if let Some(run) = runs["data"].as_array().and_then(|runs| runs.first()) {
        println!(
            "  run {}: read {}, created {}, updated {}, unchanged {}, deleted {}",
            run["kind"],
            run["records_read"],
            run["records_created"],
            run["records_updated"],
            run["records_unchanged"],
            run["records_deleted"]
        );
    }
    let page = unified
        .get(&format!(
            "/v1/work-orders?cursor={}",
            crate::cli::urlencode(&cursor)
        ))
        .await?;
    println!("  GET /v1/work-orders?cursor=<cursor kept before the change> returns:");
    for record in page["data"].as_array().into_iter().flatten() {
        println!(
            "    {} {:<10} {}",
            record["number"].as_str().unwrap_or_default(),
            record["status"].as_str().unwrap_or_default(),
            record["title"].as_str().unwrap_or_default()
        );
    }

    step("Disconnecting Northwind's Houston instance");
    let gone = &instances[2];
    admin
        .post(
            &format!("/v1/connections/{}/disconnect", gone.connection_id),
            None,
        )
        .await?;
    let (status, problem) = admin
        .with_key(&gone.token)
        .raw(Method::GET, "/v1/work-orders", None)
        .await?;
    println!("  its token now: {status} {}", problem["code"]);
    let kept = admin
        .get(&format!(
            "/v1/connections/{}/work-orders?limit=1000",
            gone.connection_id
        ))
        .await?;
    println!(
        "  its data, read with the management key: {} work orders kept",
        kept["data"].as_array().map_or(0, Vec::len)
    );
    let credits = admin.get("/v1/credits").await?;
    println!(
        "  credits: {} used of {}",
        credits["used"], credits["total"]
    );

    let (plant, plant_token) = demo_plant(&admin, &args.data_dir).await?;
    let line_token = sync_sparkplug_plant(&admin, &line).await?;

    step("Try it");
    println!("  management key: {admin_key}");
    for instance in &instances {
        println!(
            "  {} / {} ({}): token {}",
            instance.customer, instance.name, instance.deployment, instance.token
        );
    }
    println!(
        "  curl -s -H 'Authorization: Bearer {}' '{base}/v1/work-orders?limit=5'",
        first.token
    );
    println!(
        "  curl -s -H 'Authorization: Bearer {line_token}' '{base}/v1/meter-readings?limit=5'"
    );
    println!(
        "  curl -s -H 'Authorization: Bearer {}' '{base}/v1/connection'",
        first.token
    );
    println!("  curl -s -H 'Authorization: Bearer {admin_key}' '{base}/v1/connections'");
    println!("  curl -s -H 'Authorization: Bearer {admin_key}' '{base}/v1/credits'");
    println!(
        "  curl -s -H 'Authorization: Bearer {plant_token}' '{base}/v1/meter-readings?limit=5'  \
         (the OPC UA plant at {})",
        plant.endpoint
    );
    println!(
        "  change the Acme sandbox (see crates/connectors/ibm_maximo/README.md): {}/_sandbox/os/",
        first.sandbox.base_url.trim_end_matches("/maximo")
    );
    let link = admin
        .post(
            "/v1/link-sessions",
            Some(json!({
                "customer_id": "gamma-foundry",
                "redirect_uri": format!("{base}/docs"),
                "state": "demo",
            })),
        )
        .await?;
    println!("  dashboard (log in with the management key): {base}/dashboard");
    println!(
        "  Link page for a new customer (credentials: {}): {}",
        first.sandbox.credentials,
        link["url"].as_str().unwrap_or_default()
    );

    if args.exit {
        server.stop().await;
        plant.stop().await;
        return Ok(());
    }
    println!("\nServing until Ctrl-C.");
    tokio::signal::ctrl_c().await?;
    server.stop().await;
    plant.stop().await;
    Ok(())
}

/// Starts the OPC UA demo plant in this process, connects it for Acme, follows its initial
/// sync and one incremental sync of the values that changed meanwhile (the readings a
/// subscription collected); returns the plant (to keep it running) and the connection's token.
async fn demo_plant(
    admin: &Client,
    data_dir: &std::path::Path,
) -> anyhow::Result<(millrace_opcua::demo::DemoPlant, String)> {
    step("Starting an OPC UA plant in this process: a line of three machines, live values");
    let plant = millrace_opcua::demo::start("127.0.0.1:0", &data_dir.join("opcua-pki")).await?;
    println!("  {}", plant.endpoint);
    let body = json!({
        "customer_id": "acme-mining",
        "system": millrace_opcua::SYSTEM_ID,
        "deployment": "on_premise",
        "name": "Acme Mining - Line 1 OPC UA",
        "credentials": plant.credentials,
        "lookback_days": 30,
    });
    let created = admin.post("/v1/connections", Some(body)).await?;
    let id = created["connection"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let token = created["token"].as_str().unwrap_or_default().to_owned();
    println!("  acme-mining       Line 1 over OPC UA  {id}");
    follow_sync(admin, &id, None).await?;

    step("Letting the plant run for three seconds, then an incremental sync");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = newest_run(admin, &id).await?;
    admin
        .post(&format!("/v1/connections/{id}/sync"), None)
        .await?;
    follow_sync(admin, &id, before.as_deref()).await?;
    Ok((plant, token))
}

/// Starts the demo bottling line: an MQTT broker embedded in this process and a Sparkplug B
/// edge node publishing to it twice a second. Its connection's journal goes to the demo's
/// data folder.
async fn start_sparkplug_plant(
    args: &DemoArgs,
) -> anyhow::Result<millrace_sparkplug::demo::DemoPlant> {
    step("Starting a bottling line that speaks MQTT Sparkplug B (embedded broker and edge node)");
    // Read when the connector first journals, after this point; nothing else reads it.
    std::env::set_var(
        millrace_sparkplug::JOURNAL_DIR_ENV,
        args.data_dir.join("sparkplug"),
    );
    let listen = "127.0.0.1:0".parse().expect("a valid address");
    let plant = millrace_sparkplug::demo::start(listen, Duration::from_millis(500)).await?;
    println!(
        "  broker {}, group {}, edge node {} with devices filler and capper",
        plant.broker_url,
        millrace_sparkplug::demo::GROUP,
        millrace_sparkplug::demo::EDGE_NODE
    );
    Ok(plant)
}

/// Connects Acme's bottling line, follows its initial sync, lets it publish a few seconds and
/// syncs again; shows what arrived. Returns the connection's token.
async fn sync_sparkplug_plant(
    admin: &Client,
    plant: &millrace_sparkplug::demo::DemoPlant,
) -> anyhow::Result<String> {
    step("Connecting Acme's bottling line over MQTT Sparkplug B");
    let body = json!({
        "customer_id": "acme-mining",
        "system": millrace_sparkplug::SYSTEM_ID,
        "deployment": "on_premise",
        "name": "Acme Mining - Bottling line (Sparkplug B)",
        "credentials": plant.credentials,
        "lookback_days": 30,
        "sync_interval_seconds": 60,
    });
    let created = admin.post("/v1/connections", Some(body)).await?;
    let id = created["connection"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let token = created["token"].as_str().unwrap_or_default().to_owned();
    println!("  {id}: the subscriber holds a persistent session; the first sync finds the node");
    follow_sync(admin, &id, None).await?;

    // The edge node was born before Millrace subscribed; its data brought a rebirth request.
    tokio::time::sleep(Duration::from_secs(4)).await;
    println!("  the line was running before Millrace subscribed: its first messages could not be");
    println!("  read without its birth certificate, so Millrace asked it to rebirth (the warning)");
    let line = admin.with_key(&token);
    let before = newest_run(admin, &id).await?;
    line.post("/v1/connection/sync", None).await?;
    follow_sync(admin, &id, before.as_deref()).await?;
    for object in ["assets", "meters", "meter-readings", "asset-downtimes"] {
        let page = line.get(&format!("/v1/{object}?limit=1000")).await?;
        let count = page["data"].as_array().map_or(0, Vec::len);
        let more = if page["has_more"] == true { "+" } else { "" };
        println!("  {object:<16} {count}{more}");
    }
    let readings = line.get("/v1/meter-readings?limit=1000").await?;
    if let Some(reading) = readings["data"].as_array().and_then(|data| data.last()) {
        println!(
            "  latest: {} = {} at {}",
            reading["meter"]["remote_id"].as_str().unwrap_or_default(),
            reading["value"],
            reading["read_at"].as_str().unwrap_or_default()
        );
    }
    Ok(token)
}

fn step(title: &str) {
    println!("\n== {title}");
}

/// Pages to the end of a stream and returns the cursor after its last change.
async fn latest_cursor(unified: &Client, object: &str) -> anyhow::Result<String> {
    let mut cursor = String::new();
    loop {
        let path = format!(
            "/v1/{object}?limit=1000&cursor={}",
            crate::cli::urlencode(&cursor)
        );
        let page = unified.get(&path).await?;
        cursor = page["next_cursor"].as_str().unwrap_or_default().to_owned();
        if page["has_more"] != true {
            return Ok(cursor);
        }
    }
}

/// Completes one synced work order, creates a new one and deletes a synced asset, through the
/// sandbox's control API. Returns what it did.
async fn change_sandbox(sandbox: &RunningSandbox, unified: &Client) -> anyhow::Result<Vec<String>> {
    let control = sandbox.base_url.trim_end_matches("/maximo").to_owned() + "/_sandbox/os";
    let http = reqwest::Client::new();
    let mut done = Vec::new();

    let orders = unified.get("/v1/work-orders?limit=1&status=open").await?;
    let orders = if orders["data"]
        .as_array()
        .is_some_and(|data| !data.is_empty())
    {
        orders
    } else {
        unified.get("/v1/work-orders?limit=1").await?
    };
    if let Some(order) = orders["data"].as_array().and_then(|data| data.first()) {
        let key = order["remote_id"].as_str().unwrap_or_default();
        let url = format!("{control}/mxapiwodetail/{}", crate::cli::urlencode(key));
        let response = http
            .patch(&url)
            .json(&json!({"status": "COMP"}))
            .send()
            .await?;
        done.push(format!("completed work order {key}: {}", response.status()));
    }

    let new_order = json!({
        "description": "Replace hydraulic hose on boom cylinder (demo)",
        "status": "WAPPR",
        "worktype": "CM",
        "wopriority": 2,
    });
    let response = http
        .post(format!("{control}/mxapiwodetail"))
        .json(&new_order)
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    done.push(format!(
        "created work order {}: {status}",
        body["wonum"].as_str().unwrap_or("?")
    ));

    let assets = unified.get("/v1/assets?limit=1").await?;
    if let Some(asset) = assets["data"].as_array().and_then(|data| data.first()) {
        let key = asset["remote_id"].as_str().unwrap_or_default();
        let url = format!("{control}/mxapiasset/{}", crate::cli::urlencode(key));
        let response = http.delete(&url).send().await?;
        done.push(format!("deleted asset {key}: {}", response.status()));
    }
    Ok(done)
}
