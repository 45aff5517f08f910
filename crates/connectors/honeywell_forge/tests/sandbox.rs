//! The Honeywell Forge connector against its gateway sandbox over real HTTP: the seeded
//! plants synced end to end, refused credentials, and a mapping fitted to another schema.

use std::collections::BTreeSet;

use millrace_compliance::world::{Backend, World};
use millrace_connector::{Credentials, PageRequest, SandboxOptions};
use millrace_honeywell_forge::sandbox::{CLIENT_ID, CLIENT_SECRET};
use millrace_model::ObjectType;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn registry() -> millrace_connector::Registry {
    let mut registry = millrace_connector::Registry::new();
    registry.register(millrace_honeywell_forge::connector());
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeded_plants_sync_sites_assets_alarms_and_production() {
    let mut world = World::start(
        Backend::Sqlite,
        registry(),
        millrace_honeywell_forge::SYSTEM_ID,
    )
    .await;
    let index = world.sandbox(SandboxOptions::default()).await;
    let credentials = world.credentials(index);
    let (id, _token) = world.connect("plant-nord", credentials, 30).await;
    let connection = world.wait_idle(&id).await;
    millrace_compliance::world::assert_all_idle(&connection);
    // Without an OPC UA endpoint, there are no process values.
    assert!(world.admin_list_all(&id, "meters").await.is_empty());

    assert_eq!(world.admin_list_all(&id, "sites").await.len(), 2);
    let assets = world.admin_list_all(&id, "assets").await;
    assert_eq!(assets.len(), 6);
    assert!(
        assets.iter().all(|asset| asset["status"] == "operating"),
        "{assets:?}"
    );
    let downtimes = world.admin_list_all(&id, "asset-downtimes").await;
    assert!(!downtimes.is_empty());
    for downtime in &downtimes {
        assert_eq!(downtime["category"], "unplanned");
        assert!(
            downtime["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("failure")),
            "{downtime}"
        );
        let asset = downtime["asset"]["remote_id"].as_str().unwrap();
        assert!(assets.iter().any(|known| known["remote_id"] == asset));
    }
    let production = world.admin_list_all(&id, "production-orders").await;
    assert!(!production.is_empty());
    for order in &production {
        let planned = order["quantity_planned"].as_f64().unwrap();
        let produced = order["quantity_produced"].as_f64().unwrap();
        let scrapped = order["quantity_scrapped"].as_f64().unwrap();
        assert_eq!(planned, produced + scrapped, "{order}");
        assert_eq!(order["status"], "completed");
    }
    // 90 days of data, a 30-day lookback: roughly a third of the figures arrive.
    let kinds: BTreeSet<&str> = production
        .iter()
        .filter_map(|order| order["product"].as_str())
        .collect();
    assert!(!kinds.is_empty());
    assert!(
        production.len() < 200,
        "the lookback was not applied: {}",
        production.len()
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_values_come_from_the_opcua_endpoint_beneath_forge() {
    // The OPC UA plant served in-process by async-opcua stands in for the Experion server.
    let pki = tempfile::tempdir().unwrap();
    let plant = millrace_opcua::demo::start("127.0.0.1:0", pki.path())
        .await
        .unwrap();
    let mut world = World::start(
        Backend::Sqlite,
        registry(),
        millrace_honeywell_forge::SYSTEM_ID,
    )
    .await;
    let index = world.sandbox(SandboxOptions::default()).await;
    let mut credentials = world.credentials(index);
    credentials["opcua_endpoint"] = json!(plant.endpoint);
    credentials["opcua_browse_root"] = plant.credentials["browse_root"].clone();

    // A wrong OPC UA setting is refused at connect time, naming the OPC UA side.
    let mut wrong = credentials.clone();
    wrong["opcua_security"] = json!("aes");
    let reply = world
        .admin(
            Method::POST,
            "/v1/connections",
            Some(
                json!({"customer_id": "plant-nord", "system": "honeywell_forge",
                        "deployment": "cloud", "credentials": wrong}),
            ),
        )
        .await;
    reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("OPC UA") && detail.contains("security"),
        "{detail}"
    );

    let (id, _token) = world.connect("plant-nord", credentials, 30).await;
    millrace_compliance::world::assert_all_idle(&world.wait_idle(&id).await);
    assert_eq!(world.admin_list_all(&id, "assets").await.len(), 6);
    let meters = world.admin_list_all(&id, "meters").await;
    assert_eq!(meters.len(), 12, "four variables on each of three machines");
    let readings = world.admin_list_all(&id, "meter-readings").await;
    assert!(
        readings.len() >= 12,
        "each variable's current value at least"
    );
    assert!(readings.iter().all(|reading| meters
        .iter()
        .any(|meter| meter["id"] == reading["meter"]["id"])));
    world.finish().await;
    plant.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused_at_connect_and_create_nothing() {
    let mut world = World::start(
        Backend::Sqlite,
        registry(),
        millrace_honeywell_forge::SYSTEM_ID,
    )
    .await;
    let index = world
        .sandbox(SandboxOptions {
            empty: true,
            ..SandboxOptions::default()
        })
        .await;
    let url = world.sandbox_url(index).to_owned();
    for credentials in [
        json!({"base_url": url, "client_id": CLIENT_ID, "client_secret": "guessed"}),
        json!({"base_url": url, "client_id": "other-app", "client_secret": CLIENT_SECRET}),
    ] {
        let reply = world
            .admin(
                Method::POST,
                "/v1/connections",
                Some(json!({"customer_id": "plant-nord", "system": millrace_honeywell_forge::SYSTEM_ID,
                            "deployment": "cloud", "credentials": credentials})),
            )
            .await;
        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "credentials_rejected");
        assert!(
            reply.body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("invalid_client"),
            "{}",
            reply.body
        );
    }
    assert_eq!(world.admin_get("/v1/connections").await["data"], json!([]));
    assert_eq!(world.admin_get("/v1/credits").await["used"], 0);
    world.finish().await;
}

#[tokio::test]
async fn a_mapping_fits_the_connector_to_other_field_names() {
    let sandbox = millrace_honeywell_forge::sandbox::start(SandboxOptions {
        empty: true,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    reqwest::Client::new()
        .post(format!("{}/_sandbox/records/assets", sandbox.base_url))
        .json(&json!({"name": "Compressor K-101", "equipment": {"tag": "K-101", "vendor": "Atlas Copco"},
                      "status": "Stopped"}))
        .send()
        .await
        .unwrap();
    let mut credentials = sandbox.credentials.clone();
    credentials["mapping"] = json!({"assets": {
        "path": "/sine/v1/assets", "id": "id", "updated": "updatedAt",
        "fields": {"asset_number": "equipment.tag", "manufacturer": "equipment.vendor",
                   "name": "name", "remote_status": "status"},
        "extra_fields": ["equipment"]
    }});
    let credentials: Credentials = serde_json::from_value(credentials).unwrap();
    let source = millrace_honeywell_forge::connector()
        .open(&credentials)
        .unwrap();
    let page = source
        .read_page(&PageRequest {
            connection_id: "test".into(),
            object: ObjectType::Assets,
            since: None,
            page: None,
            page_size: 10,
        })
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    let asset = &page.records[0];
    assert_eq!(asset.fields["asset_number"], "K-101");
    assert_eq!(asset.fields["manufacturer"], "Atlas Copco");
    assert_eq!(asset.fields["status"], "not_operating");
    assert_eq!(asset.custom_fields["equipment"]["tag"], "K-101");
    sandbox.shutdown.cancel();
}
