//! The demo plant (embedded `rumqttd` broker and this crate's edge node) synced by a whole
//! Millrace, as `millrace demo` does.

mod support;

use std::time::Duration;

use millrace_connector::SandboxOptions;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_plant_is_synced_with_assets_meters_readings_and_a_downtime() {
    let plant =
        millrace_sparkplug::demo::start("127.0.0.1:0".parse().unwrap(), Duration::from_millis(100))
            .await
            .unwrap();
    let journals = tempfile::tempdir().unwrap();
    let (mut world, _connector) = support::world(journals.path()).await;
    let (id, token) = world.connect("demo", plant.credentials.clone(), 30).await;
    world.wait_idle(&id).await;

    // `millrace sandbox mqtt_sparkplug_b` serves the same plant, with credentials that connect.
    let sandbox = world.sandbox(SandboxOptions::default()).await;
    assert!(world.sandbox_url(sandbox).starts_with("mqtt://127.0.0.1:"));
    let (other, _) = world
        .connect("sandbox", world.credentials(sandbox), 30)
        .await;
    millrace_compliance::world::assert_all_idle(&world.wait_idle(&other).await);

    // The node was born before Millrace subscribed: its data brings a rebirth, then the
    // line, its two devices and their eight metrics are known.
    let assets =
        support::sync_until(&world, &id, &token, "assets", |assets| assets.len() == 3).await;
    let mut names: Vec<&str> = assets.iter().map(|a| a["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["capper", "filler", "line-1"]);
    let meters = support::sync_until(&world, &id, &token, "meters", |m| m.len() == 8).await;
    assert!(meters
        .iter()
        .any(|m| m["remote_id"] == "demo-plant/line-1#Line/Speed"));

    // Readings of every type flow; the capper's jam (every 20 ticks, 4 ticks long) is a
    // downtime that its next birth ends.
    let readings = support::sync_until(&world, &id, &token, "meter-readings", |r| {
        r.len() > 50 && r.iter().any(|r| r["text_value"] == "running")
    })
    .await;
    let speed: Vec<&Value> = readings
        .iter()
        .filter(|r| r["meter"]["remote_id"] == "demo-plant/line-1#Line/Speed")
        .collect();
    assert!(speed
        .iter()
        .all(|r| (113.0..=123.0).contains(&r["value"].as_f64().unwrap())));
    let downtimes = support::sync_until(&world, &id, &token, "asset-downtimes", |d| {
        d.iter().any(|d| !d["ended_at"].is_null())
    })
    .await;
    assert_eq!(
        downtimes[0]["asset"]["remote_id"],
        "demo-plant/line-1/capper"
    );

    plant.shutdown.cancel();
    plant.edge_node.await.unwrap();
    world.finish().await;
}
