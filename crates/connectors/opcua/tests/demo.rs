//! The in-process demo plant (async-opcua's server) synced through a whole Millrace: it is a
//! real OPC UA server, so this is also the connector against a second implementation.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use millrace_compliance::world::{assert_all_idle, Backend, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_plant_syncs_assets_meters_live_readings_and_a_downtime() {
    let pki = tempfile::tempdir().unwrap();
    let plant = millrace_opcua::demo::start("127.0.0.1:0", pki.path())
        .await
        .unwrap();
    let (registry, _connector) = support::registry();
    let world = World::start(Backend::Sqlite, registry, millrace_opcua::SYSTEM_ID).await;
    let (id, token) = world.connect("demo", plant.credentials.clone(), 30).await;
    assert_all_idle(&world.wait_idle(&id).await);

    let assets = world.list_all(&token, "assets").await;
    let names: BTreeSet<&str> = assets
        .iter()
        .map(|asset| asset["asset_number"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["Line1", "Oven1", "Press1", "Press2"])
    );
    assert_eq!(world.list_all(&token, "meters").await.len(), 12);
    let first = support::remote_ids(&world.list_all(&token, "meter-readings").await);
    assert!(
        first.len() >= 12,
        "each variable's current value: {first:?}"
    );

    // The values change every half second: a later sync adds readings, none twice. Press2
    // stops 15 s into each 20 s cycle, so within 25 s a downtime appears.
    let mut downtimes = Vec::new();
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        world.sync_and_wait(&id).await;
        downtimes = world.list_all(&token, "asset-downtimes").await;
        if !downtimes.is_empty() {
            break;
        }
    }
    let later = support::remote_ids(&world.list_all(&token, "meter-readings").await);
    assert!(later.len() > first.len() && first.is_subset(&later));
    assert_eq!(downtimes.len(), 1, "{downtimes:?}");
    assert_eq!(
        downtimes[0]["asset"]["remote_id"]
            .as_str()
            .unwrap()
            .rsplit('.')
            .next(),
        Some("Press2")
    );
    world.finish().await;
    plant.stop().await;
}
