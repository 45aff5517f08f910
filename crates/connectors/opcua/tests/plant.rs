//! The OPC UA connector against a real OPC UA server (Python asyncua, from PyPI) serving a small
//! plant, through a whole Millrace: initial and incremental syncs of real traffic, restarts of
//! Millrace and of the server, subscriptions where the server keeps no history, downtimes from
//! a state variable, secure channels, and connect-time errors.
//!
//! The generic compliance harness does not apply: it writes records with chosen change times
//! and deletes them, and an OPC UA server's values are appended by the plant and never deleted.
//! These tests check the same promises for this source instead: every reading the server holds
//! in the window is stored (no gap), none twice (no duplicate), across incremental syncs and
//! restarts (resume).

mod support;

use std::collections::BTreeSet;

use millrace_compliance::world::{Backend, World};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{Plant, PlantOptions, HISTORIZED};

async fn world(backend: Backend) -> (World, std::sync::Arc<millrace_opcua::OpcUaConnector>) {
    let (registry, connector) = support::registry();
    (
        World::start(backend, registry, millrace_opcua::SYSTEM_ID).await,
        connector,
    )
}

async fn readings(world: &World, token: &str) -> BTreeSet<String> {
    support::remote_ids(&world.list_all(token, "meter-readings").await)
}

/// Historized readings Millrace holds: those of the historized variables.
fn historized(ids: &BTreeSet<String>) -> BTreeSet<String> {
    ids.iter()
        .filter(|id| {
            HISTORIZED
                .iter()
                .any(|name| id.contains(&format!(".{name}@")))
        })
        .cloned()
        .collect()
}

async fn history_story(backend: Backend) {
    let mut plant = Plant::start(PlantOptions::default()).await;
    plant.tick(3).await;
    let (mut world, connector) = world(backend).await;

    // The initial sync: the plant's objects, variables and every historized value.
    let (id, token) = world.connect("acme", plant.credentials(), 30).await;
    let connection = world.wait_idle(&id).await;
    millrace_compliance::world::assert_all_idle(&connection);
    let assets = world.list_all(&token, "assets").await;
    let names: BTreeSet<&str> = assets
        .iter()
        .map(|asset| asset["asset_number"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["Line1", "Oven1", "Press1", "Press2"])
    );
    let press = assets
        .iter()
        .find(|asset| asset["asset_number"] == "Press1")
        .unwrap();
    assert_eq!(press["parent"]["remote_id"], "ns=2;s=Plant.Line1");
    let meters = world.list_all(&token, "meters").await;
    assert_eq!(meters.len(), 15, "five variables on each of three machines");
    let counter = meters
        .iter()
        .find(|meter| meter["remote_id"] == "ns=2;s=Plant.Line1.Press1.Counter")
        .unwrap();
    assert_eq!(counter["asset"]["remote_id"], "ns=2;s=Plant.Line1.Press1");
    assert_eq!(
        historized(&readings(&world, &token).await),
        plant.expected_readings(&HISTORIZED)
    );
    let sample = world.list_all(&token, "meter-readings").await;
    let reading = sample
        .iter()
        .find(|reading| {
            reading["remote_id"]
                .as_str()
                .unwrap()
                .starts_with("ns=2;s=Plant.Line1.Press2.Counter@")
        })
        .unwrap();
    assert_eq!(
        reading["meter"]["remote_id"],
        "ns=2;s=Plant.Line1.Press2.Counter"
    );
    assert_eq!(reading["asset"]["remote_id"], "ns=2;s=Plant.Line1.Press2");
    assert!(reading["value"].is_number());

    // Incremental syncs of more traffic, twice: each adds exactly the new values.
    for _ in 0..2 {
        plant.tick(4).await;
        world.sync_and_wait(&id).await;
        assert_eq!(
            historized(&readings(&world, &token).await),
            plant.expected_readings(&HISTORIZED)
        );
    }

    // Millrace restarts (a new engine on the same store, its subscriptions gone) while the
    // plant runs on: nothing is lost, nothing stored twice.
    world.stop().await;
    connector.monitors().close_all().await;
    plant.tick(5).await;
    world.boot_again().await;
    world.sync_and_wait(&id).await;
    assert_eq!(
        historized(&readings(&world, &token).await),
        plant.expected_readings(&HISTORIZED)
    );

    // The server restarts (killed, then back with its history): the same.
    plant.tick(2).await;
    let mut plant = plant.restart().await;
    plant.tick(3).await;
    world.sync_and_wait(&id).await;
    let stored = historized(&readings(&world, &token).await);
    assert_eq!(stored, plant.expected_readings(&HISTORIZED));

    // A sync with no new values re-reads the overlap and changes no stored reading. (Vibration,
    // read by a subscription, may still deliver values it published after the last sync.)
    let run = world.sync_and_wait(&id).await;
    assert_eq!(run["records_updated"], 0, "{run}");
    let all = readings(&world, &token).await;
    assert_eq!(historized(&all), stored);
    let truth = Plant::ids(&plant.truth());
    assert!(
        all.is_subset(&truth),
        "invented: {:?}",
        all.difference(&truth).collect::<Vec<_>>()
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_synced_whole_then_incrementally_across_restarts_sqlite() {
    history_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_synced_whole_then_incrementally_across_restarts_postgres() {
    history_story(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_variable_gives_downtimes_from_stop_to_run() {
    let mut plant = Plant::start(PlantOptions::default()).await;
    plant.tick(1).await;
    let (world, _connector) = world(Backend::Sqlite).await;
    let (id, token) = world.connect("acme", plant.credentials(), 30).await;
    world.wait_idle(&id).await;
    assert!(world.list_all(&token, "asset-downtimes").await.is_empty());

    // A stop still lasting at a sync is an open downtime; the run after it closes it.
    plant.command("stop Press1").await;
    plant.tick(2).await;
    world.sync_and_wait(&id).await;
    let open = world.list_all(&token, "asset-downtimes").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["asset"]["remote_id"], "ns=2;s=Plant.Line1.Press1");
    assert!(open[0]["ended_at"].is_null());

    plant.tick(1).await;
    plant.command("run Press1").await;
    plant.command("stop Oven1").await;
    plant.command("run Oven1").await;
    world.sync_and_wait(&id).await;
    let downtimes = world.list_all(&token, "asset-downtimes").await;
    let support::Truth { stops } = support::Truth::of(&plant);
    assert_eq!(downtimes.len(), 2, "{downtimes:?}");
    let press = downtimes
        .iter()
        .find(|downtime| downtime["asset"]["remote_id"] == "ns=2;s=Plant.Line1.Press1")
        .unwrap();
    assert_eq!(press["id"], open[0]["id"], "the same downtime, now ended");
    for downtime in &downtimes {
        let asset = downtime["asset"]["remote_id"].as_str().unwrap();
        let (started, ended) = stops[asset];
        assert_eq!(
            millrace_compliance::world::time(&downtime["started_at"]),
            started
        );
        assert_eq!(
            millrace_compliance::world::time(&downtime["ended_at"]),
            ended
        );
    }
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_history_readings_come_from_a_subscription_and_survive_a_server_restart() {
    let mut plant = Plant::start(PlantOptions {
        no_history: true,
        ..PlantOptions::default()
    })
    .await;
    let (world, _connector) = world(Backend::Sqlite).await;
    let (id, token) = world.connect("acme", plant.credentials(), 30).await;
    world.wait_idle(&id).await;
    // The subscription's first values are each variable's current one.
    let first = readings(&world, &token).await;
    assert_eq!(first.len(), 15, "{first:?}");
    assert!(first.is_subset(&plant.expected_readings(&[
        "Temperature",
        "Speed",
        "Counter",
        "Running",
        "Vibration"
    ])));

    // Every change while the subscription runs is stored once, across syncs.
    let written_before = plant.truth().len();
    plant.tick(3).await;
    publishes().await;
    world.sync_and_wait(&id).await;
    plant.tick(2).await;
    publishes().await;
    world.sync_and_wait(&id).await;
    let all = support::Plant::ids(&plant.truth()[written_before..]);
    let stored = readings(&world, &token).await;
    assert!(
        all.is_subset(&stored),
        "missing: {:?}",
        all.difference(&stored).collect::<Vec<_>>()
    );

    // The server restarts: the subscription comes back by itself (values written while it
    // is away are lost, the documented limit without history); from the first value it
    // delivers again, every value is stored once.
    let mut plant = plant.restart().await;
    let started = std::time::Instant::now();
    let back_from = loop {
        let written_before = plant.truth().len();
        plant.tick(1).await;
        publishes().await;
        world.sync_and_wait(&id).await;
        let probe = support::Plant::ids(&plant.truth()[written_before..]);
        if probe.is_subset(&readings(&world, &token).await) {
            break written_before;
        }
        assert!(
            started.elapsed().as_secs() < 90,
            "the subscription did not come back"
        );
    };
    plant.tick(3).await;
    publishes().await;
    world.sync_and_wait(&id).await;
    let after = support::Plant::ids(&plant.truth()[back_from..]);
    let stored = readings(&world, &token).await;
    assert!(
        after.is_subset(&stored),
        "missing: {:?}",
        after.difference(&stored).collect::<Vec<_>>()
    );
    let truth = support::Plant::ids(&plant.truth());
    assert!(
        stored.is_subset(&truth),
        "invented: {:?}",
        stored.difference(&truth).collect::<Vec<_>>()
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic256sha256_connects_with_a_pinned_or_trusted_certificate_only() {
    let plant = Plant::start(PlantOptions::default()).await;
    let (world, _connector) = world(Backend::Sqlite).await;
    let mut credentials = plant.credentials();
    credentials["security"] = json!("basic256sha256");

    // Not trusted: a clear error naming the thumbprint to pin, and nothing created.
    let reply = world
        .admin(
            Method::POST,
            "/v1/connections",
            Some(connect_body(&credentials)),
        )
        .await;
    reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let detail = reply.body["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("not trusted"), "{detail}");
    let thumbprint = detail
        .split(|c: char| !c.is_ascii_hexdigit())
        .find(|word| word.len() == 40)
        .unwrap_or_else(|| panic!("no thumbprint in `{detail}`"))
        .to_owned();

    // A wrong pin is refused the same way.
    credentials["server_certificate_thumbprint"] = json!("00".repeat(20));
    let reply = world
        .admin(
            Method::POST,
            "/v1/connections",
            Some(connect_body(&credentials)),
        )
        .await;
    reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(no_connections(&world).await, 0);

    // The right pin connects over an encrypted channel and syncs.
    credentials["server_certificate_thumbprint"] = json!(thumbprint);
    let (id, token) = world.connect("acme", credentials, 30).await;
    millrace_compliance::world::assert_all_idle(&world.wait_idle(&id).await);
    assert_eq!(world.list_all(&token, "meters").await.len(), 15);
    world.finish().await;
}

/// Waits for a subscription's publishes to reach Millrace (a few publishing intervals).
async fn publishes() {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}

fn connect_body(credentials: &Value) -> Value {
    json!({
        "customer_id": "acme",
        "system": "opcua",
        "deployment": "cloud",
        "credentials": credentials,
    })
}

async fn no_connections(world: &World) -> usize {
    world.admin_get("/v1/connections").await["data"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_give_clear_errors_at_connect_time_and_create_nothing() {
    let plant = Plant::start(PlantOptions {
        no_anonymous: true,
        ..PlantOptions::default()
    })
    .await;
    let (world, _connector) = world(Backend::Sqlite).await;
    let good = plant.credentials();
    let mut cases: Vec<(Value, StatusCode, &str, &str)> = Vec::new();

    let mut wrong_password = good.clone();
    wrong_password["password"] = json!("not-the-password");
    cases.push((
        wrong_password,
        StatusCode::UNPROCESSABLE_ENTITY,
        "credentials_rejected",
        "BadUserAccessDenied",
    ));

    let mut anonymous = good.clone();
    anonymous.as_object_mut().unwrap().remove("username");
    anonymous.as_object_mut().unwrap().remove("password");
    cases.push((
        anonymous,
        StatusCode::UNPROCESSABLE_ENTITY,
        "credentials_rejected",
        "anonymous",
    ));

    let mut missing_root = good.clone();
    missing_root["browse_root"] = json!("ns=2;s=Plant.Line9");
    cases.push((
        missing_root,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
        "does not exist",
    ));

    let mut unreachable = good.clone();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    unreachable["endpoint"] = json!(format!("opc.tcp://127.0.0.1:{closed}/nothing"));
    cases.push((
        unreachable,
        StatusCode::BAD_GATEWAY,
        "source_unreachable",
        "could not be reached",
    ));

    for (credentials, status, code, words) in cases {
        let reply = world
            .admin(
                Method::POST,
                "/v1/connections",
                Some(connect_body(&credentials)),
            )
            .await;
        assert_eq!(reply.status, status, "{}", reply.body);
        assert_eq!(reply.body["code"], code, "{}", reply.body);
        let detail = reply.body["detail"].as_str().unwrap();
        assert!(detail.contains(words), "`{detail}` should say `{words}`");
        assert!(!detail.contains("not-the-password"), "{detail}");
    }
    assert_eq!(no_connections(&world).await, 0);
    assert_eq!(world.admin_get("/v1/credits").await["used"], 0);
    world.finish().await;
}
