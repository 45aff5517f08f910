//! The whole product against CAP test services: connect, initial and incremental sync after
//! changes made through the service's own OData API, records checked field by field; two
//! regional instances of one customer kept apart; connect-time errors that create nothing.

use std::collections::HashMap;

use millrace_compliance::world::{Backend, World};
use millrace_connector::{Credentials, Registry};
use millrace_model::ObjectType;
use millrace_sap::cap::{shared_data_dir, CapOptions, CapService, Seed};
use millrace_sap::client::SapSource;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(millrace_sap::connector());
    registry
}

async fn world(backend: Backend) -> World {
    World::start(backend, registry(), millrace_sap::SYSTEM_ID).await
}

async fn service(
    plant: &str,
    client: &str,
    user: &str,
    assets: &[&str],
    orders: u32,
) -> CapService {
    CapService::start(CapOptions {
        seed: Seed::Excavators {
            assets: assets.iter().map(|a| a.to_string()).collect(),
            max_orders: orders,
        },
        plant: plant.to_owned(),
        client: client.to_owned(),
        user: user.to_owned(),
        password: format!("{user}-secret"),
        ..CapOptions::default()
    })
    .await
}

fn writer(service: &CapService) -> SapSource {
    let credentials = service.credentials();
    SapSource::open(&Credentials::new(credentials.as_object().unwrap().clone())).unwrap()
}

/// Connects `customer` with `credentials` and waits for the initial sync to settle.
async fn connect(
    world: &World,
    customer: &str,
    credentials: Value,
    interval: u32,
) -> (String, String) {
    let reply = world
        .admin(
            Method::POST,
            "/v1/connections",
            Some(
                json!({"customer_id": customer, "system": millrace_sap::SYSTEM_ID,
                        "deployment": "cloud", "credentials": credentials,
                        "lookback_days": 3650, "sync_interval_seconds": interval}),
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let id = reply.body["connection"]["id"].as_str().unwrap().to_owned();
    let token = reply.body["token"].as_str().unwrap().to_owned();
    let connection = world.wait_idle(&id).await;
    millrace_compliance::world::assert_all_idle(&connection);
    (id, token)
}

fn by_remote_id(records: Vec<Value>) -> HashMap<String, Value> {
    records
        .into_iter()
        .map(|record| (record["remote_id"].as_str().unwrap().to_owned(), record))
        .collect()
}

/// The CSV row behind an order: orders are numbered 4000000 plus their line in the export
/// (one record per line, the header being line 0).
fn export_row(order: &str) -> HashMap<String, String> {
    let path = shared_data_dir().join("excavator-mwo/excavators-cleaned.csv");
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let parse = |line: &str| -> Vec<String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .escape(Some(b'\\'))
            .from_reader(line.as_bytes());
        reader
            .records()
            .next()
            .unwrap()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect()
    };
    let headers = parse(lines.next().unwrap());
    let number: usize = order.parse::<usize>().unwrap() - 4_000_000;
    let row = parse(lines.nth(number - 1).unwrap());
    headers.into_iter().zip(row).collect()
}

/// The rows of AI4I 2020 in file (UDI) order, by column name, numeric columns only.
fn ai4i_rows() -> Vec<HashMap<String, f64>> {
    let path = shared_data_dir().join("ai4i2020/ai4i2020.csv");
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            headers
                .iter()
                .zip(record.iter())
                .filter_map(|(name, value)| Some((name.to_owned(), value.parse().ok()?)))
                .collect()
        })
        .collect()
}

async fn initial_and_incremental_sync(backend: Backend) {
    let service = service("AU01", "100", "COMM_AU", &["A", "B"], 60).await;
    let world = world(backend).await;
    let (id, token) = connect(&world, "acme", service.credentials(), 900).await;

    // What the service holds, read raw through its V2 API.
    let source = writer(&service);
    let raw_orders = source.read_all(ObjectType::WorkOrders).await.unwrap();
    assert_eq!(raw_orders.len(), 60);
    let orders = by_remote_id(world.list_all(&token, "work-orders").await);
    assert_eq!(orders.len(), 60, "every order of the lookback window");
    let assets = by_remote_id(world.list_all(&token, "assets").await);
    assert_eq!(assets.len(), 2);
    let sites = by_remote_id(world.list_all(&token, "sites").await);
    assert_eq!(sites.keys().collect::<Vec<_>>(), vec!["AU01"]);
    let locations = by_remote_id(world.list_all(&token, "locations").await);
    let requests = by_remote_id(world.list_all(&token, "work-requests").await);
    let corrective = raw_orders
        .iter()
        .filter(|o| o["MaintenanceOrderType"] == "PM01")
        .count();
    assert_eq!(
        requests.len(),
        corrective,
        "one notification per corrective order"
    );

    // A sample order, field by field, against the export row it came from.
    let sample = raw_orders
        .iter()
        .find(|o| o["MaintenanceOrderType"] == "PM01" && !o["ActualTotalCost"].is_null())
        .unwrap();
    let number = sample["MaintenanceOrder"].as_str().unwrap();
    let row = export_row(number);
    let order = &orders[number];
    let title: String = row["OriginalShorttext"].chars().take(40).collect();
    assert_eq!(order["number"], number);
    assert_eq!(order["title"], title.trim());
    assert_eq!(order["remote_work_type"], row["PMType"]);
    assert_eq!(order["work_type"], "corrective");
    assert_eq!(
        order["actual_cost"].as_f64().unwrap(),
        row["Cost"].parse::<f64>().unwrap()
    );
    assert_eq!(order["currency"], "AUD");
    assert_eq!(order["priority"], "medium");
    assert_eq!(order["remote_priority"], "3");
    let phase = sample["MaintOrdProcessPhaseCode"].as_str().unwrap();
    assert_eq!(order["remote_status"], phase);
    assert_eq!(
        order["status"],
        if phase == "07" {
            "completed"
        } else {
            "in_progress"
        }
    );
    let excavator = match row["Asset"].as_str() {
        "A" => "10000001",
        _ => "10000002",
    };
    assert_eq!(order["asset"]["remote_id"], excavator);
    assert_eq!(
        order["asset"]["id"], assets[excavator]["id"],
        "the reference names the record"
    );
    assert_eq!(order["site"]["id"], sites["AU01"]["id"]);
    let location = sample["FunctionalLocation"].as_str().unwrap();
    assert_eq!(order["location"]["id"], locations[location]["id"]);
    assert_eq!(
        locations[location]["name"],
        row["FuncLocation"].chars().take(40).collect::<String>()
    );
    let notification = sample["MaintenanceNotification"].as_str().unwrap();
    assert_eq!(order["work_request"]["id"], requests[notification]["id"]);
    assert_eq!(requests[notification]["title"], order["title"]);
    // The basic start: a separate date and time (07:00, UTC by the connection's default zone).
    let start = millrace_compliance::world::time(&order["scheduled_start"]);
    assert_eq!(start.format("%H:%M:%S").to_string(), "07:00:00");
    let end = millrace_compliance::world::time(&order["scheduled_end"]);
    assert_eq!(end - start, chrono::Duration::hours(10));
    let changed = millrace_compliance::world::time(&order["remote_updated_at"]);
    assert_eq!(
        changed - start,
        chrono::Duration::hours(11),
        "changed at 18:00 of the start day"
    );
    let tasks = order["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["remote_id"], "0010");
    let major = row["MajorSystem"].as_str();
    assert!(
        tasks[0]["description"].as_str().unwrap().starts_with(major),
        "{}",
        tasks[0]
    );
    let asset = &assets[excavator];
    assert_eq!(
        asset["name"],
        format!("Hydraulic mining excavator {}", row["Asset"])
    );
    assert_eq!(asset["status"], "operating");
    assert_eq!(asset["asset_type"], "EXCAVATOR");
    assert_eq!(asset["manufacturer"], "O&K");
    assert_eq!(
        asset["model"], "RH120C",
        "the export names both A and B RH120C"
    );
    assert_eq!(asset["site"]["id"], sites["AU01"]["id"]);

    // Replacement orders with a cost bought their part: a purchase order each, from O&K.
    let vendors = by_remote_id(world.list_all(&token, "vendors").await);
    assert_eq!(vendors["0000100001"]["name"], "O&K");
    let purchase_orders = by_remote_id(world.list_all(&token, "purchase-orders").await);
    let bought: Vec<&Value> = raw_orders
        .iter()
        .filter(|o| {
            o["MaintenanceOrderType"] == "PM02"
                && o["ActualTotalCost"]
                    .as_str()
                    .is_some_and(|cost| cost.parse::<f64>().unwrap() > 0.0)
        })
        .collect();
    assert!(
        !bought.is_empty(),
        "the sample holds a replacement order with a cost"
    );
    assert_eq!(purchase_orders.len(), bought.len());
    for replacement in bought {
        let order_number: u64 = replacement["MaintenanceOrder"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let purchase = &purchase_orders[&(4_500_000_000 + order_number - 4_000_000).to_string()];
        let cost: f64 = replacement["ActualTotalCost"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(purchase["vendor"]["id"], vendors["0000100001"]["id"]);
        assert_eq!(purchase["site"]["id"], sites["AU01"]["id"]);
        assert_eq!(purchase["currency"], "AUD");
        assert_eq!(purchase["total_cost"].as_f64().unwrap(), cost);
        let line = &purchase["lines"][0];
        assert_eq!(line["line_number"], 10);
        assert_eq!(line["quantity"], 1.0);
        assert_eq!(line["unit_of_measure"], "EA");
        assert_eq!(line["unit_cost"].as_f64().unwrap(), cost);
        let phase = replacement["MaintOrdProcessPhaseCode"].as_str().unwrap();
        let (status, received) = if phase == "07" {
            ("received", json!(1.0))
        } else {
            ("pending_approval", Value::Null)
        };
        assert_eq!(purchase["status"], status);
        assert_eq!(line["quantity_received"], received);
    }

    // Measuring points of both excavators, with readings from AI4I 2020: excavator A took the
    // file's first twelve rows, one document per point and row, numbered from 100001.
    let meters = by_remote_id(world.list_all(&token, "meters").await);
    assert_eq!(
        {
            let mut ids: Vec<&String> = meters.keys().collect();
            ids.sort();
            ids
        },
        vec!["1011", "1012", "1021", "1022"]
    );
    let gauge = &meters["1011"];
    assert_eq!(gauge["name"], "Process temperature");
    assert_eq!(gauge["meter_type"], "gauge");
    assert_eq!(gauge["unit"], "K");
    assert_eq!(gauge["asset"]["id"], assets["10000001"]["id"]);
    assert_eq!(gauge["location"]["id"], locations["AU01-EXC-A"]["id"]);
    assert_eq!(meters["1022"]["name"], "Torque");
    assert_eq!(meters["1022"]["asset"]["id"], assets["10000002"]["id"]);
    let readings = by_remote_id(world.list_all(&token, "meter-readings").await);
    assert_eq!(readings.len(), 48, "2 excavators x 2 points x 12 readings");
    let ai4i = ai4i_rows();
    for (k, row) in ai4i.iter().take(12).enumerate() {
        let temperature = &readings[&(100_001 + 2 * k).to_string()];
        let torque = &readings[&(100_002 + 2 * k).to_string()];
        assert_eq!(temperature["meter"]["id"], gauge["id"]);
        assert_eq!(
            temperature["value"].as_f64().unwrap(),
            row["Process temperature [K]"]
        );
        assert_eq!(temperature["unit"], "K");
        assert_eq!(torque["meter"]["id"], meters["1012"]["id"]);
        assert_eq!(torque["value"].as_f64().unwrap(), row["Torque [Nm]"]);
        assert_eq!(torque["unit"], "NM");
        assert_eq!(torque["read_by"], "SENSOR");
        assert_eq!(temperature["read_at"], torque["read_at"]);
    }
    let first = millrace_compliance::world::time(&readings["100001"]["read_at"]);
    let last = millrace_compliance::world::time(&readings["100023"]["read_at"]);
    assert_eq!(first.format("%H:%M:%S").to_string(), "06:00:00");
    assert_eq!(
        last - first,
        chrono::Duration::days(11),
        "one reading a day"
    );
    // Excavator B went on with the file's 13th row.
    assert_eq!(
        readings["100025"]["value"].as_f64().unwrap(),
        ai4i[12]["Process temperature [K]"]
    );
    assert_eq!(readings["100025"]["meter"]["id"], meters["1021"]["id"]);

    // Changes through the service's own OData API (with the CSRF handshake).
    let untouched = raw_orders
        .iter()
        .map(|o| o["MaintenanceOrder"].as_str().unwrap())
        .find(|o| *o != number)
        .unwrap()
        .to_owned();
    let gone = raw_orders
        .iter()
        .map(|o| o["MaintenanceOrder"].as_str().unwrap())
        .rfind(|o| *o != number && *o != untouched)
        .unwrap()
        .to_owned();
    source
        .write(
            Method::PATCH,
            ObjectType::WorkOrders,
            Some(&format!("('{number}')")),
            Some(
                &json!({"MaintenanceOrderDesc": "Replace bucket cylinder seals",
                         "MaintOrdProcessPhaseCode": "05", "MaintPriority": "1"}),
            ),
        )
        .await
        .unwrap();
    let created = source
        .write(
            Method::POST,
            ObjectType::WorkOrders,
            None,
            Some(&json!({"MaintenanceOrderDesc": "Inspect slew ring bolts",
                         "MaintenanceOrderType": "PM02", "MaintenancePlanningPlant": "AU01",
                         "Equipment": "10000001", "MaintOrdProcessPhaseCode": "02",
                         "to_MaintenanceOrderOperation": [
                             {"MaintenanceOrderOperation": "0010",
                              "OperationDescription": "Torque check",
                              "OperationPlannedWorkQuantity": "90",
                              "OperationWorkQuantityUnit": "MIN"}]})),
        )
        .await
        .unwrap();
    let new_order = created["d"]["MaintenanceOrder"]
        .as_str()
        .unwrap()
        .to_owned();
    source
        .write(
            Method::DELETE,
            ObjectType::WorkOrders,
            Some(&format!("('{gone}')")),
            None,
        )
        .await
        .unwrap();
    source
        .write(
            Method::DELETE,
            ObjectType::Assets,
            Some("(Equipment='10000002',ValidityEndDate=datetime'9999-12-31T00:00:00')"),
            None,
        )
        .await
        .unwrap();

    // A new reading, a reversed one, and a measuring point marked for deletion.
    let today = chrono::Utc::now().date_naive();
    let midnight = today.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let posted = source
        .write(
            Method::POST,
            ObjectType::MeterReadings,
            None,
            Some(&json!({"MeasuringPoint": "1011",
                         "MsmtRdngDate": format!("/Date({})/", midnight.timestamp_millis()),
                         "MsmtRdngTime": "PT06H30M00S", "MeasurementReadingInEntryUoM": "309.4",
                         "MeasurementReadingEntryUoM": "K", "MsmtRdngByUser": "INSPECTOR"})),
        )
        .await
        .unwrap();
    let new_reading = posted["d"]["MeasurementDocument"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(new_reading, "100049", "the next document number");
    source
        .write(
            Method::PATCH,
            ObjectType::MeterReadings,
            Some("('100002')"),
            Some(&json!({"MsmtRdngIsReversed": true})),
        )
        .await
        .unwrap();
    source
        .write(Method::DELETE, ObjectType::Meters, Some("('1022')"), None)
        .await
        .unwrap();

    let run = world.sync_and_wait(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["kind"], "incremental", "{run}");
    let readings_after = by_remote_id(
        world
            .admin_list_path(&format!(
                "/v1/connections/{id}/meter-readings?include_deleted=true"
            ))
            .await,
    );
    assert_eq!(readings_after.len(), 49);
    let added_reading = &readings_after[&new_reading];
    assert_eq!(added_reading["value"].as_f64().unwrap(), 309.4);
    assert_eq!(added_reading["read_by"], "INSPECTOR");
    assert_eq!(
        millrace_compliance::world::time(&added_reading["read_at"]),
        midnight + chrono::Duration::minutes(390)
    );
    assert_eq!(added_reading["meter"]["id"], gauge["id"]);
    let reversed = &readings_after["100002"];
    assert_eq!(
        reversed["remote_deleted_at"], reversed["read_at"],
        "a reversed document is a tombstone at its reading time"
    );
    assert!(readings_after["100001"]["remote_deleted_at"].is_null());
    assert_eq!(
        readings_after["100003"]["modified_at"], readings["100003"]["modified_at"],
        "a reading that did not change was not rewritten"
    );
    assert_eq!(world.list_all(&token, "meter-readings").await.len(), 48);
    let meters_after = by_remote_id(
        world
            .admin_list_path(&format!("/v1/connections/{id}/meters?include_deleted=true"))
            .await,
    );
    let flagged_meter = &meters_after["1022"];
    assert_eq!(
        millrace_compliance::world::time(&flagged_meter["remote_deleted_at"]),
        midnight,
        "the deletion flag is a tombstone at the change date"
    );
    assert!(meters_after["1011"]["remote_deleted_at"].is_null());

    let after = by_remote_id(
        world
            .admin_list_path(&format!(
                "/v1/connections/{id}/work-orders?include_deleted=true"
            ))
            .await,
    );
    assert_eq!(after.len(), 61);
    let changed_order = &after[number];
    assert_eq!(changed_order["title"], "Replace bucket cylinder seals");
    assert_eq!(changed_order["status"], "in_progress");
    assert_eq!(changed_order["priority"], "urgent");
    assert_eq!(
        changed_order["id"], order["id"],
        "an update keeps the record's id"
    );
    let added = &after[&new_order];
    assert_eq!(added["work_type"], "preventive");
    assert_eq!(added["status"], "open");
    assert_eq!(added["tasks"][0]["description"], "Torque check");
    assert_eq!(added["tasks"][0]["estimated_hours"], 1.5);
    assert!(
        !after[&gone]["remote_deleted_at"].is_null(),
        "reconciliation found the deletion"
    );
    assert!(after[number]["remote_deleted_at"].is_null());
    assert_eq!(
        after[&untouched]["modified_at"], orders[&untouched]["modified_at"],
        "an order that did not change was not rewritten"
    );
    let assets_after = by_remote_id(
        world
            .admin_list_path(&format!("/v1/connections/{id}/assets?include_deleted=true"))
            .await,
    );
    let flagged = &assets_after["10000002"];
    assert!(
        !flagged["remote_deleted_at"].is_null(),
        "the deletion flag is a tombstone"
    );
    assert_eq!(flagged["remote_deleted_at"], flagged["remote_updated_at"]);
    assert!(assets_after["10000001"]["remote_deleted_at"].is_null());
    let live = world.list_all(&token, "work-orders").await;
    assert_eq!(live.len(), 60, "59 of the first read and the new one");

    world.finish().await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_and_incremental_sync_on_sqlite() {
    initial_and_incremental_sync(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_and_incremental_sync_on_postgres() {
    initial_and_incremental_sync(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_regional_instances_of_one_customer_stay_apart() {
    let australia = service("AU01", "100", "COMM_AU", &["A", "B"], 25).await;
    let chile = service("CL01", "200", "COMM_CL", &["C", "D"], 35).await;
    let world = world(Backend::Sqlite).await;
    let (id_au, token_au) = connect(&world, "acme", australia.credentials(), 900).await;
    // The second instance speaks OData V4.
    let (id_cl, token_cl) = connect(&world, "acme", chile.credentials_v4(), 3600).await;
    assert_ne!(token_au, token_cl);

    // Each token reads its own instance's data only.
    let orders_au = world.list_all(&token_au, "work-orders").await;
    let orders_cl = world.list_all(&token_cl, "work-orders").await;
    assert_eq!(orders_au.len(), 25);
    assert_eq!(orders_cl.len(), 35);
    assert!(orders_au.iter().all(|o| o["site"]["remote_id"] == "AU01"));
    assert!(orders_cl.iter().all(|o| o["site"]["remote_id"] == "CL01"));
    let foreign = format!("/v1/work-orders/{}", orders_cl[0]["id"].as_str().unwrap());
    let reply = world
        .call(Some(&token_au), Method::GET, &foreign, None)
        .await;
    assert!(
        matches!(reply.status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN),
        "{}: {}",
        reply.status,
        reply.body
    );
    let mine = world.token_get(&token_au, "/v1/connection").await;
    assert_eq!(mine["id"], id_au);

    // Separate credits and schedules.
    let credits = world.admin_get("/v1/credits").await;
    assert_eq!(
        credits["used"], 8,
        "4 credits per cloud SAP connection: {credits}"
    );
    let au = world.admin_get(&format!("/v1/connections/{id_au}")).await;
    let cl = world.admin_get(&format!("/v1/connections/{id_cl}")).await;
    assert_eq!(au["sync_interval_seconds"], 900);
    assert_eq!(cl["sync_interval_seconds"], 3600);
    assert_eq!(au["credits"], 4);

    // A change in one instance reaches its connection only.
    writer(&australia)
        .write(
            Method::POST,
            ObjectType::WorkOrders,
            None,
            Some(
                &json!({"MaintenanceOrderDesc": "Perth only", "MaintenanceOrderType": "PM01",
                         "MaintenancePlanningPlant": "AU01"}),
            ),
        )
        .await
        .unwrap();
    let run = world.sync_and_wait(&id_au).await;
    assert_eq!(run["records_created"], 1, "{run}");
    assert_eq!(world.list_all(&token_au, "work-orders").await.len(), 26);
    assert_eq!(world.list_all(&token_cl, "work-orders").await.len(), 35);

    // Disconnecting one leaves the other working, and returns only its credits.
    let reply = world
        .admin(
            Method::POST,
            &format!("/v1/connections/{id_au}/disconnect"),
            None,
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.body);
    let refused = world
        .call(Some(&token_au), Method::GET, "/v1/work-orders", None)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(world.admin_get("/v1/credits").await["used"], 4);
    let run = world.sync_and_wait(&id_cl).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(world.list_all(&token_cl, "work-orders").await.len(), 35);

    world.finish().await;
    australia.stop().await;
    chile.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_are_distinct_and_create_nothing() {
    let service = service("AU01", "100", "COMM_AU", &["E"], 5).await;
    let world = world(Backend::Sqlite).await;
    let connections_before = world.admin_get("/v1/connections").await;
    let credits_before = world.admin_get("/v1/credits").await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };

    let with = |change: &dyn Fn(&mut Value)| {
        let mut credentials = service.credentials();
        change(&mut credentials);
        credentials
    };
    let cases = [
        (
            "wrong password",
            with(&|c| c["password"] = json!("not-the-password")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "credentials_rejected",
            "refused the logon of user COMM_AU in client 100",
        ),
        (
            "wrong client",
            with(&|c| c["sap_client"] = json!("999")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "credentials_rejected",
            "client 999 is not available in this system",
        ),
        (
            "unknown service",
            with(&|c| c["services"] = json!({"work-orders": "API_MAINTORDER_TYPO"})),
            StatusCode::BAD_GATEWAY,
            "source_error",
            "the service /sap/opu/odata/sap/API_MAINTORDER_TYPO (entity set MaintenanceOrder) \
             does not exist",
        ),
        (
            "unreachable host",
            with(&|c| c["base_url"] = json!(format!("http://127.0.0.1:{closed_port}"))),
            StatusCode::BAD_GATEWAY,
            "source_unreachable",
            "could not be reached",
        ),
    ];
    let mut details = Vec::new();
    for (case, credentials, status, code, says) in cases {
        let reply = world
            .admin(
                Method::POST,
                "/v1/connections",
                Some(
                    json!({"customer_id": "acme", "system": millrace_sap::SYSTEM_ID,
                            "deployment": "on_premise", "credentials": credentials}),
                ),
            )
            .await;
        reply.assert_problem(status, code);
        let detail = reply.body["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(says), "{case}: {detail}");
        assert!(!detail.contains("secret"), "{case}: a password in {detail}");
        details.push(detail);
    }
    details.dedup();
    assert_eq!(details.len(), 4, "four distinct errors: {details:#?}");
    assert_eq!(world.admin_get("/v1/connections").await, connections_before);
    assert_eq!(world.admin_get("/v1/credits").await, credits_before);

    world.finish().await;
    service.stop().await;
}
