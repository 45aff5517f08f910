//! The connector against a real Mosquitto broker and a real Sparkplug B edge node (the
//! `pysparkplug` package), through a whole Millrace: connect, sync, read over the API.
//!
//! These are the streaming counterparts of the compliance harness's checks, which target
//! request/response sources: nothing missed and nothing stored twice across incremental
//! syncs, across a restart of Millrace, and across a restart of the broker; a sequence gap
//! answered by a rebirth; a malformed payload reported without stopping the stream; wrong
//! credentials refused at connect time.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use millrace_compliance::world::{stream, World};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{connect_command, readings_of, speed, sync_until, temp, EdgeNode, Mosquitto};

const GROUP: &str = "plant";
const NODE: &str = "line-a";

/// A timestamp base (ms) a minute in the past, so samples never collide with birth values.
fn base_ms() -> i64 {
    Utc::now().timestamp_millis() - 60_000
}

fn speed_id(ts: i64) -> String {
    format!("{GROUP}/{NODE}#Speed@{ts}")
}

/// Returns whether a reading's remote id is one of the `count` samples a second apart from
/// `base` (birth values and earlier samples are not).
fn in_range(remote_id: &str, base: i64, count: i64) -> bool {
    let ts: i64 = remote_id.rsplit('@').next().unwrap().parse().unwrap();
    (base..base + count * 1000).contains(&ts)
}

fn temp_id(ts: i64) -> String {
    format!("{GROUP}/{NODE}/press#Temp@{ts}")
}

/// Connects Millrace to the broker while the edge node is already up, then lets the node's
/// first data message (which Millrace cannot read without a birth) bring a rebirth, and
/// waits until both assets are synced. Returns the connection id and token.
async fn connect_and_learn_the_node(
    world: &World,
    broker: &Mosquitto,
    edge: &mut EdgeNode,
    credentials: Value,
) -> (String, String) {
    edge.call(connect_command(broker, GROUP, NODE), "born")
        .await;
    let (id, token) = world.connect("acme", credentials, 30).await;
    let connection = world.wait_idle(&id).await;
    assert_eq!(
        stream(&connection, "assets")["state"],
        "idle",
        "{connection}"
    );

    // The births went out before Millrace subscribed: the node is unknown to it, so its next
    // message brings a rebirth request, which the node answers. (QoS 0 may be dropped by a
    // busy broker: the node tries again, as its next sample would.)
    let mut answered = None;
    for attempt in 0..4 {
        // Sampled a week ago, far from the samples the tests count.
        let week_ago = base_ms() - 7 * 24 * 3600 * 1000 - attempt;
        edge.publish(None, speed(1.0, week_ago), 0).await;
        answered = edge.expect_within("rebirth", Duration::from_secs(5)).await;
        if answered.is_some() {
            break;
        }
    }
    assert!(answered.is_some(), "no rebirth was asked for");
    sync_until(world, &id, &token, "assets", |assets| assets.len() == 2).await;
    (id, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_and_incremental_sync_of_real_traffic() {
    let broker = Mosquitto::start(None).await;
    let journals = tempfile::tempdir().unwrap();
    let (world, _connector) = support::world(journals.path()).await;
    let mut edge = EdgeNode::spawn();
    let credentials = json!({"broker_url": broker.url(), "group_ids": GROUP});
    let (id, token) = connect_and_learn_the_node(&world, &broker, &mut edge, credentials).await;

    // Assets: the edge node and its device, online, the device under the node.
    let assets = world.list_all(&token, "assets").await;
    let node = assets
        .iter()
        .find(|a| a["remote_id"] == "plant/line-a")
        .unwrap();
    let press = assets
        .iter()
        .find(|a| a["remote_id"] == "plant/line-a/press")
        .unwrap();
    assert_eq!(node["status"], "operating");
    assert_eq!(node["asset_type"], "sparkplug_edge_node");
    assert_eq!(node["custom_fields"]["bd_seq"], 1);
    assert_eq!(press["parent"]["remote_id"], "plant/line-a");
    assert_eq!(press["parent"]["id"], node["id"]);

    // Meters: one per birth metric, with the alias and type the birth declared.
    let meters = world.list_all(&token, "meters").await;
    let meter_ids: BTreeSet<&str> = meters
        .iter()
        .map(|m| m["remote_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        meter_ids,
        BTreeSet::from(["plant/line-a#Speed", "plant/line-a/press#Temp"])
    );
    let speed_meter = meters.iter().find(|m| m["name"] == "Speed").unwrap();
    assert_eq!(speed_meter["custom_fields"]["alias"], 1);
    assert_eq!(speed_meter["custom_fields"]["datatype"], "Double");
    assert_eq!(speed_meter["asset"]["id"], node["id"]);

    // The data message sent before the rebirth could not be read; the stream says so.
    let connection = world.admin_get(&format!("/v1/connections/{id}")).await;
    let warning = stream(&connection, "meter-readings")["last_error"].to_string();
    assert!(warning.contains("no birth certificate"), "{warning}");

    // Initial batch of readings, by alias, with the metric timestamps as sample times.
    let base = base_ms();
    for i in 0..5 {
        edge.publish(
            None,
            speed(10.0 + f64::from(i), base + i64::from(i) * 1000),
            0,
        )
        .await;
        edge.publish(Some("press"), temp(30 + i, base + i64::from(i) * 1000), 0)
            .await;
    }
    let wanted: BTreeSet<String> = (0..5).map(|i| speed_id(base + i * 1000)).collect();
    let readings = sync_until(&world, &id, &token, "meter-readings", |records| {
        let ids: BTreeSet<String> = records
            .iter()
            .map(|r| r["remote_id"].as_str().unwrap().to_owned())
            .collect();
        wanted.is_subset(&ids) && ids.contains(&temp_id(base + 4000))
    })
    .await;
    let speeds = readings_of(&readings, "#Speed");
    for i in 0..5 {
        let ts = base + i * 1000;
        let found: Vec<_> = speeds
            .iter()
            .filter(|(id, _)| *id == speed_id(ts))
            .collect();
        assert_eq!(
            found,
            [&(speed_id(ts), 10.0 + i as f64)],
            "exactly one reading at {ts}"
        );
    }
    let sample = readings
        .iter()
        .find(|r| r["remote_id"] == temp_id(base + 2000))
        .unwrap();
    assert_eq!(sample["value"], 32.0);
    assert_eq!(
        sample["read_at"].as_str().unwrap(),
        chrono::DateTime::from_timestamp_millis(base + 2000)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    );
    assert_eq!(sample["meter"]["remote_id"], "plant/line-a/press#Temp");
    let unique: BTreeSet<&str> = readings
        .iter()
        .map(|r| r["remote_id"].as_str().unwrap())
        .collect();
    assert_eq!(unique.len(), readings.len(), "no reading is stored twice");

    // Incremental: a client polling with its cursor sees exactly the new readings.
    let (_, cursor) = world.list_all_from(&token, "meter-readings", None).await;
    let later = base + 10_000;
    for i in 0..3 {
        edge.publish(
            None,
            speed(50.0 + f64::from(i), later + i64::from(i) * 1000),
            0,
        )
        .await;
    }
    sync_until(&world, &id, &token, "meter-readings", |records| {
        records
            .iter()
            .any(|r| r["remote_id"] == speed_id(later + 2000))
    })
    .await;
    let (new, _) = world
        .list_all_from(&token, "meter-readings", Some(&cursor))
        .await;
    let new_ids: Vec<&str> = new
        .iter()
        .map(|r| r["remote_id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..3).map(|i| speed_id(later + i * 1000)).collect();
    assert_eq!(
        new_ids, expected,
        "the cursor shows each new reading once, in order"
    );

    // A sync with nothing new changes nothing.
    let run = world.sync_and_wait(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let (again, _) = world
        .list_all_from(&token, "meter-readings", Some(&cursor))
        .await;
    assert_eq!(
        again.len(),
        3,
        "re-reading the journal stores nothing twice"
    );

    edge.quit().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_millrace_loses_and_duplicates_nothing() {
    let broker = Mosquitto::start(None).await;
    let journals = tempfile::tempdir().unwrap();
    let (mut world, connector) = support::world(journals.path()).await;
    let mut edge = EdgeNode::spawn();
    let credentials = json!({"broker_url": broker.url()});
    let (id, token) = connect_and_learn_the_node(&world, &broker, &mut edge, credentials).await;

    let base = base_ms();
    for i in 0..5 {
        edge.publish(None, speed(f64::from(i), base + i64::from(i) * 1000), 1)
            .await;
    }
    sync_until(&world, &id, &token, "meter-readings", |r| {
        r.iter().any(|r| r["remote_id"] == speed_id(base + 4000))
    })
    .await;

    // Millrace stops: the engine, and the subscriber with it (its session stays on the
    // broker). What the node publishes meanwhile is queued by the broker, QoS 0 and QoS 1.
    world.stop().await;
    connector.shutdown().await;
    for i in 5..15 {
        let qos = if i % 2 == 0 { 1 } else { 0 };
        edge.publish(None, speed(f64::from(i), base + i64::from(i) * 1000), qos)
            .await;
    }

    // A new engine on the same store; the subscriber resumes its session from its journal.
    world.boot_again().await;
    let readings = sync_until(&world, &id, &token, "meter-readings", |r| {
        r.iter().any(|r| r["remote_id"] == speed_id(base + 14_000))
    })
    .await;
    let speeds: Vec<(String, f64)> = readings_of(&readings, "#Speed")
        .into_iter()
        .filter(|(id, _)| in_range(id, base, 15))
        .collect();
    let mut expected: Vec<(String, f64)> = (0..15)
        .map(|i| (speed_id(base + i * 1000), i as f64))
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        speeds, expected,
        "every reading once, none lost across the restart"
    );

    // The sequence continued across the restart: no rebirth was needed.
    edge.send(json!({"op": "data", "metrics": speed(99.0, base + 20_000), "qos": 1}))
        .await;
    let next = edge.event().await;
    assert_eq!(
        next["event"], "published",
        "no rebirth was asked for: {next}"
    );

    edge.quit().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_the_broker_loses_and_duplicates_nothing() {
    let mut broker = Mosquitto::start(None).await;
    let journals = tempfile::tempdir().unwrap();
    let (mut world, connector) = support::world(journals.path()).await;
    let mut edge = EdgeNode::spawn();
    let credentials = json!({"broker_url": broker.url()});
    let (id, token) = connect_and_learn_the_node(&world, &broker, &mut edge, credentials).await;

    let base = base_ms();
    for i in 0..4 {
        edge.publish(None, speed(f64::from(i), base + i64::from(i) * 1000), 1)
            .await;
    }
    sync_until(&world, &id, &token, "meter-readings", |r| {
        r.iter().any(|r| r["remote_id"] == speed_id(base + 3000))
    })
    .await;

    // Millrace goes away, readings queue on the broker, and the broker restarts: the queue
    // must come back from its persistence file.
    world.stop().await;
    connector.shutdown().await;
    for i in 4..8 {
        edge.publish(None, speed(f64::from(i), base + i64::from(i) * 1000), 1)
            .await;
    }
    broker.restart().await;

    // Millrace comes back while the node reconnects by itself; QoS 1 waits for it.
    world.boot_again().await;
    for i in 8..12 {
        edge.publish(None, speed(f64::from(i), base + i64::from(i) * 1000), 1)
            .await;
    }
    let readings = sync_until(&world, &id, &token, "meter-readings", |r| {
        r.iter().any(|r| r["remote_id"] == speed_id(base + 11_000))
            && r.iter().any(|r| r["remote_id"] == speed_id(base + 7000))
    })
    .await;
    let speeds: Vec<(String, f64)> = readings_of(&readings, "#Speed")
        .into_iter()
        .filter(|(id, _)| in_range(id, base, 12))
        .collect();
    let mut expected: Vec<(String, f64)> = (0..12)
        .map(|i| (speed_id(base + i * 1000), i as f64))
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        speeds,
        expected,
        "every reading once across the broker restart: {}",
        broker.log()
    );

    edge.quit().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_gap_brings_a_rebirth_that_the_node_answers() {
    let broker = Mosquitto::start(None).await;
    let journals = tempfile::tempdir().unwrap();
    let (world, _connector) = support::world(journals.path()).await;
    let mut edge = EdgeNode::spawn();
    let credentials = json!({"broker_url": broker.url()});
    let (id, token) = connect_and_learn_the_node(&world, &broker, &mut edge, credentials).await;
    let before = world.list_all(&token, "assets").await;

    let base = base_ms();
    edge.publish(None, speed(1.0, base), 0).await;
    // One sequence number is skipped, as if a message had been lost on the way.
    let gap = json!({"op": "data", "metrics": speed(2.0, base + 1000), "qos": 0, "skip_seq": true});
    edge.call(gap, "published").await;
    let answered = edge.expect("rebirth").await;
    assert_eq!(answered["event"], "rebirth");

    // The message after the gap is valid and kept; the rebirth renewed the node's birth.
    let readings = sync_until(&world, &id, &token, "meter-readings", |r| {
        r.iter().any(|r| r["remote_id"] == speed_id(base + 1000))
    })
    .await;
    assert!(readings.iter().any(|r| r["remote_id"] == speed_id(base)));
    let after = world.list_all(&token, "assets").await;
    assert_eq!(after.len(), before.len());

    // After the rebirth, the sequence starts again and data flows without a new request.
    edge.publish(None, speed(3.0, base + 2000), 0).await;
    sync_until(&world, &id, &token, "meter-readings", |r| {
        r.iter().any(|r| r["remote_id"] == speed_id(base + 2000))
    })
    .await;

    edge.quit().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deaths_are_downtimes_ended_by_the_next_birth() {
    let broker = Mosquitto::start(None).await;
    let journals = tempfile::tempdir().unwrap();
    let (world, _connector) = support::world(journals.path()).await;
    let mut edge = EdgeNode::spawn();
    let credentials = json!({"broker_url": broker.url()});
    let (id, token) = connect_and_learn_the_node(&world, &broker, &mut edge, credentials).await;

    edge.call(json!({"op": "ddeath", "device": "press"}), "published")
        .await;
    let downtimes = sync_until(&world, &id, &token, "asset-downtimes", |d| d.len() == 1).await;
    assert_eq!(downtimes[0]["asset"]["remote_id"], "plant/line-a/press");
    assert!(
        downtimes[0]["ended_at"].is_null(),
        "open until the device is born again"
    );
    let press = world.list_all(&token, "assets").await;
    let press = press
        .iter()
        .find(|a| a["remote_id"] == "plant/line-a/press")
        .unwrap();
    assert_eq!(press["status"], "not_operating");

    // The node dies (NDEATH with the birth's bdSeq): its own downtime opens; the device's
    // stays the one already open.
    edge.call(json!({"op": "death"}), "dead").await;
    let downtimes = sync_until(&world, &id, &token, "asset-downtimes", |d| d.len() == 2).await;
    assert!(downtimes.iter().all(|d| d["ended_at"].is_null()));

    // A new session of the node: births end both downtimes.
    edge.call(connect_command(&broker, GROUP, NODE), "born")
        .await;
    let downtimes = sync_until(&world, &id, &token, "asset-downtimes", |d| {
        d.len() == 2 && d.iter().all(|d| !d["ended_at"].is_null())
    })
    .await;
    for downtime in &downtimes {
        assert!(
            downtime["ended_at"].as_str() >= downtime["started_at"].as_str(),
            "{downtime}"
        );
        assert_eq!(downtime["category"], "unplanned");
    }
    edge.quit().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_payload_is_reported_and_the_stream_goes_on() {
    let broker = Mosquitto::start(None).await;
    let journals = tempfile::tempdir().unwrap();
    let (world, _connector) = support::world(journals.path()).await;
    let mut edge = EdgeNode::spawn();
    let credentials = json!({"broker_url": broker.url()});
    let (id, token) = connect_and_learn_the_node(&world, &broker, &mut edge, credentials).await;
    // Wait out the warning of the message sent before the rebirth.
    world.sync_and_wait(&id).await;

    let garbage = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args([
            "-t",
            "spBv1.0/plant/NDATA/line-a",
            "-q",
            "1",
            "-m",
            "\u{ff}not protobuf",
        ])
        .status();
    if !garbage.map(|status| status.success()).unwrap_or(false) {
        // mosquitto_pub ships with mosquitto-clients; publish with rumqttc instead.
        publish_raw(&broker, "spBv1.0/plant/NDATA/line-a", b"\xffnot protobuf").await;
    }
    let base = base_ms();
    edge.publish(None, speed(7.0, base), 1).await;

    let readings = sync_until(&world, &id, &token, "meter-readings", |r| {
        r.iter().any(|r| r["remote_id"] == speed_id(base))
    })
    .await;
    assert!(!readings.is_empty());
    let connection = world.admin_get(&format!("/v1/connections/{id}")).await;
    let readings_stream = stream(&connection, "meter-readings");
    assert_eq!(readings_stream["state"], "idle");
    let warning = readings_stream["last_error"].to_string();
    assert!(warning.contains("not a Sparkplug B payload"), "{warning}");

    edge.quit().await;
    world.finish().await;
}

async fn publish_raw(broker: &Mosquitto, topic: &str, payload: &[u8]) {
    let options = rumqttc::MqttOptions::new("raw-publisher", "127.0.0.1", broker.port);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 8);
    client
        .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.to_vec())
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) = eventloop.poll().await
            {
                return;
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_and_an_unreachable_broker_fail_at_connect_and_create_nothing() {
    let broker = Mosquitto::start(Some(("millrace", "s3cret"))).await;
    let journals = tempfile::tempdir().unwrap();
    let (world, _connector) = support::world(journals.path()).await;

    let attempt = |credentials: Value| {
        let body = json!({
            "customer_id": "acme", "system": millrace_sparkplug::SYSTEM_ID,
            "deployment": "cloud", "credentials": credentials,
        });
        let world = &world;
        async move {
            world
                .admin(Method::POST, "/v1/connections", Some(body))
                .await
        }
    };

    let wrong =
        attempt(json!({"broker_url": broker.url(), "username": "millrace", "password": "nope"}))
            .await;
    wrong.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "credentials_rejected");
    let detail = wrong.body["detail"].as_str().unwrap();
    assert!(detail.contains("refused"), "{detail}");
    assert!(
        !detail.contains("nope"),
        "the password is not echoed: {detail}"
    );

    let anonymous = attempt(json!({"broker_url": broker.url()})).await;
    anonymous.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "credentials_rejected");

    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let unreachable =
        attempt(json!({"broker_url": format!("mqtt://127.0.0.1:{closed_port}")})).await;
    unreachable.assert_problem(StatusCode::BAD_GATEWAY, "source_unreachable");
    assert!(unreachable.body["detail"]
        .as_str()
        .unwrap()
        .contains("cannot reach the broker"));

    let tls_to_plain = attempt(json!({
        "broker_url": format!("mqtts://localhost:{}", broker.port),
        "tls_insecure_skip_verify": true,
    }))
    .await;
    tls_to_plain.assert_problem(StatusCode::BAD_GATEWAY, "source_unreachable");
    assert!(
        tls_to_plain.body["detail"]
            .as_str()
            .unwrap()
            .contains("TLS"),
        "{}",
        tls_to_plain.body
    );

    let connections = world.admin_get("/v1/connections").await;
    assert_eq!(connections["data"], json!([]), "nothing was created");
    let credits = world.admin_get("/v1/credits").await;
    assert_eq!(credits["used"], 0);

    let right =
        attempt(json!({"broker_url": broker.url(), "username": "millrace", "password": "s3cret"}))
            .await;
    assert_eq!(right.status, StatusCode::CREATED, "{}", right.body);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca_and_a_client_certificate() {
    let broker = Mosquitto::start_tls().await;
    let journals = tempfile::tempdir().unwrap();
    let (world, _connector) = support::world(journals.path()).await;
    let url = format!("mqtts://localhost:{}", broker.port);
    let (ca, cert, key) = (
        broker.tls_file("ca.pem"),
        broker.tls_file("client.pem"),
        broker.tls_file("client.key"),
    );
    let attempt = |credentials: Value| {
        let body = json!({
            "customer_id": "acme", "system": millrace_sparkplug::SYSTEM_ID,
            "deployment": "cloud", "credentials": credentials,
        });
        let world = &world;
        async move {
            world
                .admin(Method::POST, "/v1/connections", Some(body))
                .await
        }
    };

    // The public web roots do not know the test CA: verification is on by default.
    let untrusted = attempt(json!({
        "broker_url": url, "client_cert_pem": cert, "client_key_pem": key,
    }))
    .await;
    untrusted.assert_problem(StatusCode::BAD_GATEWAY, "source_unreachable");
    let detail = untrusted.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("TLS") && detail.contains("localhost"),
        "{detail}"
    );

    // The broker requires a client certificate.
    let anonymous = attempt(json!({"broker_url": url, "ca_pem": ca})).await;
    anonymous.assert_problem(StatusCode::BAD_GATEWAY, "source_unreachable");

    // Skipping verification is possible, explicitly.
    let skipped = attempt(json!({
        "broker_url": url, "tls_insecure_skip_verify": "true",
        "client_cert_pem": cert, "client_key_pem": key,
    }))
    .await;
    assert_eq!(skipped.status, StatusCode::CREATED, "{}", skipped.body);

    // The CA and the client certificate: connected, and the subscriber syncs over TLS.
    let trusted = attempt(json!({
        "broker_url": url, "ca_pem": ca, "client_cert_pem": cert, "client_key_pem": key,
        "group_ids": "plant",
    }))
    .await;
    assert_eq!(trusted.status, StatusCode::CREATED, "{}", trusted.body);
    let id = trusted.body["connection"]["id"].as_str().unwrap();
    let connection = world.wait_idle(id).await;
    millrace_compliance::world::assert_all_idle(&connection);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_a_paged_read_resumes_with_every_reading_once() {
    let broker = Mosquitto::start(None).await;
    let journals = tempfile::tempdir().unwrap();
    let (mut world, connector) = support::world(journals.path()).await;
    let mut edge = EdgeNode::spawn();
    let credentials = json!({"broker_url": broker.url()});
    let (id, token) = connect_and_learn_the_node(&world, &broker, &mut edge, credentials).await;

    // More readings than three pages (the test engine reads 100 per page).
    const COUNT: i64 = 320;
    let base = base_ms() - COUNT * 1000;
    for i in 0..COUNT {
        edge.publish(None, speed(i as f64, base + i * 1000), 1)
            .await;
    }
    // Ask for a sync and stop Millrace as kill -9 would, whatever page it is on.
    let reply = world
        .admin(Method::POST, &format!("/v1/connections/{id}/sync"), None)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(150)).await;
    world.crash().await;
    connector.shutdown().await;

    world.boot_again().await;
    let readings = sync_until(&world, &id, &token, "meter-readings", |r| {
        r.iter()
            .any(|r| r["remote_id"] == speed_id(base + (COUNT - 1) * 1000))
    })
    .await;
    let speeds: Vec<(String, f64)> = readings_of(&readings, "#Speed")
        .into_iter()
        .filter(|(id, _)| in_range(id, base, COUNT))
        .collect();
    let mut expected: Vec<(String, f64)> = (0..COUNT)
        .map(|i| (speed_id(base + i * 1000), i as f64))
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(speeds, expected, "every reading once after the crash");

    edge.quit().await;
    world.finish().await;
}
