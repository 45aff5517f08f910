//! Millrace against a real Tryton server: connect, the initial sync of the seeded database,
//! changes made through Tryton's own JSON-RPC, the incremental sync, and the unified records
//! checked field by field; and the errors a wrong connection gives at connect time.

use std::collections::HashMap;

use millrace_compliance::world::{assert_all_idle, Backend, World};
use millrace_tryton::client::TrytonClient;
use millrace_tryton::server::{Template, TrytonServer, DATABASE, USER};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn world(backend: Backend) -> World {
    let mut registry = millrace_connector::Registry::new();
    registry.register(millrace_tryton::connector());
    World::start(backend, registry, millrace_tryton::SYSTEM_ID).await
}

/// Every record of `object` the connection holds, by remote id.
async fn by_remote_id(world: &World, token: &str, object: &str) -> HashMap<String, Value> {
    world
        .list_all(token, object)
        .await
        .into_iter()
        .map(|record| (record["remote_id"].as_str().unwrap().to_owned(), record))
        .collect()
}

/// Reads records of `model` through Tryton's JSON-RPC.
async fn tryton_read(
    admin: &TrytonClient,
    model: &str,
    domain: Value,
    fields: Value,
) -> Vec<Value> {
    let answer = admin
        .call(
            &format!("model.{model}.search_read"),
            vec![
                domain,
                json!(0),
                Value::Null,
                json!([["id", "ASC"]]),
                fields,
            ],
        )
        .await
        .unwrap_or_else(|err| panic!("{model} search_read: {err}"));
    answer.as_array().unwrap().clone()
}

async fn tryton_count(admin: &TrytonClient, model: &str, domain: Value) -> usize {
    admin
        .call(&format!("model.{model}.search_count"), vec![domain])
        .await
        .unwrap_or_else(|err| panic!("{model} search_count: {err}"))
        .as_u64()
        .unwrap() as usize
}

fn id_of(record: &Value) -> String {
    record["id"].as_i64().unwrap().to_string()
}

async fn initial_and_incremental_sync(backend: Backend) {
    let tryton = TrytonServer::start(Template::Seeded).await;
    let admin = tryton.admin();
    let world = world(backend).await;
    let (id, token) = world
        .connect("acme", tryton.credentials(&tryton.base_url), 90)
        .await;
    let connection = world.wait_idle(&id).await;
    assert_all_idle(&connection);

    // Every record Tryton holds arrives, once.
    let archived = json!([["active", "in", [true, false]]]);
    for (object, model, domain) in [
        ("sites", "company.company", json!([])),
        ("assets", "stock.lot", archived.clone()),
        ("vendors", "party.party", archived.clone()),
        ("production-orders", "production", json!([])),
        ("quality-events", "quality.inspection", json!([])),
        (
            "work-orders",
            "project.work",
            json!([["type", "=", "task"]]),
        ),
        (
            "parts",
            "product.product",
            json!([
                ["type", "in", ["goods", "assets"]],
                ["active", "in", [true, false]]
            ]),
        ),
    ] {
        let expected = tryton_count(&admin, model, domain).await;
        let stored = by_remote_id(&world, &token, object).await;
        assert!(expected > 0, "the seeded database has {model} records");
        assert_eq!(
            stored.len(),
            expected,
            "{object}: every {model} record, once"
        );
    }

    // A sample, field by field: a datalogger lot from GeoNet's register.
    let lots = tryton_read(
        &admin,
        "stock.lot",
        json!([["number", "=", "4751"]]),
        json!([
            "number",
            "product.name",
            "product.code",
            "product.description",
            "create_date"
        ]),
    )
    .await;
    let lot = &lots[0];
    let assets = by_remote_id(&world, &token, "assets").await;
    let asset = &assets[&id_of(lot)];
    assert_eq!(asset["serial_number"], "4751");
    assert_eq!(asset["asset_number"], "4751");
    assert_eq!(asset["name"], "CR1000");
    assert_eq!(asset["model"], lot["product."]["code"]);
    assert_eq!(asset["description"], "Datalogger by Campbell Scientific");
    assert_eq!(asset["asset_type"], "serial-numbered lot");
    assert_eq!(asset["remote_status"], "active");
    assert_eq!(
        asset["remote_created_at"],
        json!(
            millrace_tryton::encoding::read_datetime(&lot["create_date"])
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        )
    );

    // A purchase with its lines (the comment line is not a purchase line) and its vendor.
    let purchases = tryton_read(
        &admin,
        "purchase.purchase",
        json!([["state", "=", "quotation"]]),
        json!([
            "number",
            "party",
            "party.name",
            "description",
            "currency.code"
        ]),
    )
    .await;
    let purchase_orders = by_remote_id(&world, &token, "purchase-orders").await;
    let purchase = &purchases[0];
    let order = &purchase_orders[&id_of(purchase)];
    assert_eq!(order["number"], purchase["number"]);
    assert_eq!(order["status"], "pending_approval");
    assert_eq!(order["remote_status"], "quotation");
    assert_eq!(order["currency"], "NZD");
    assert_eq!(order["description"], purchase["description"]);
    assert_eq!(order["ordered_at"], "2026-01-01T00:00:00Z");
    assert_eq!(
        order["vendor"]["remote_id"],
        purchase["party"].as_i64().unwrap().to_string()
    );
    let vendors = by_remote_id(&world, &token, "vendors").await;
    let vendor = &vendors[order["vendor"]["remote_id"].as_str().unwrap()];
    assert_eq!(
        vendor["id"], order["vendor"]["id"],
        "references carry Millrace ids"
    );
    assert_eq!(vendor["name"], purchase["party."]["name"]);
    let lines = order["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{order}");
    assert_eq!(lines[0]["quantity"], 1.0);
    assert_eq!(lines[0]["unit_cost"], 1799.5);
    assert_eq!(lines[0]["line_cost"], 1799.5);
    assert_eq!(order["total_cost"], 1799.5);

    // A purchase request is a purchase order of one line, with a remote id of its own.
    let requests = tryton_read(
        &admin,
        "purchase.request",
        json!([]),
        json!(["product", "party", "quantity", "state"]),
    )
    .await;
    let request = &purchase_orders[&format!("request-{}", id_of(&requests[0]))];
    assert_eq!(request["status"], "pending_approval");
    assert_eq!(request["remote_status"], "draft");
    assert_eq!(request["number"], Value::Null);
    assert_eq!(request["required_at"], "2026-03-01T00:00:00Z");
    assert_eq!(
        request["vendor"]["remote_id"],
        id_of(&json!({"id": requests[0]["party"]}))
    );
    assert_eq!(request["lines"][0]["quantity"], requests[0]["quantity"]);
    assert_eq!(
        request["lines"][0]["part"]["remote_id"],
        id_of(&json!({"id": requests[0]["product"]}))
    );
    assert_eq!(request["custom_fields"]["kind"], "purchase_request");

    // Parts carry their stock per warehouse, as Tryton computes it from the stock moves.
    let products = tryton_read(
        &admin,
        "product.product",
        json!([["code", "=", "CR1000"]]),
        json!(["code", "name", "cost_price"]),
    )
    .await;
    let parts = by_remote_id(&world, &token, "parts").await;
    let part = &parts[&id_of(&products[0])];
    assert_eq!(part["part_number"], "CR1000");
    assert_eq!(part["name"], "CR1000");
    assert_eq!(part["unit_cost"], 1850.0);
    assert_eq!(part["unit_of_measure"], "u");
    let stock = part["stock"].as_array().unwrap();
    assert_eq!(stock.len(), 1, "{part}");
    assert_eq!(stock[0]["storeroom"], "AVL");
    assert!(
        stock[0]["quantity_on_hand"].as_f64().unwrap() >= 2.0,
        "{part}"
    );
    let locations = by_remote_id(&world, &token, "locations").await;
    let depot = &locations[stock[0]["location"]["remote_id"].as_str().unwrap()];
    assert_eq!(depot["name"], "Avalon Depot");
    assert_eq!(depot["location_type"], "warehouse");

    // A production order of an AI4I 2020 run and the inspection of its tool wear.
    let inspections = tryton_read(
        &admin,
        "quality.inspection",
        json!([["state", "=", "failed"]]),
        json!(["number", "origin", "points", "processed_at"]),
    )
    .await;
    let events = by_remote_id(&world, &token, "quality-events").await;
    let event = &events[&id_of(&inspections[0])];
    assert_eq!(event["event_type"], "inspection");
    assert_eq!(event["title"], "Machining run check");
    assert_eq!(event["status"], "closed");
    assert_eq!(event["remote_status"], "failed");
    assert!(event["closed_at"].is_string(), "{event}");
    assert!(
        event["custom_fields"]["points"]["tool_wear"]
            .as_f64()
            .unwrap()
            > 200.0,
        "{event}"
    );
    let production_id = inspections[0]["origin"]
        .as_str()
        .unwrap()
        .strip_prefix("production,")
        .unwrap()
        .to_owned();
    let productions = by_remote_id(&world, &token, "production-orders").await;
    let production = &productions[&production_id];
    assert_eq!(production["quantity_planned"], 1.0);
    assert!(
        production["product"]
            .as_str()
            .unwrap()
            .starts_with("Machined part, quality"),
        "{production}"
    );
    assert!(production["scheduled_end"].is_string(), "{production}");
    assert!(production["status"] == "planned", "{production}");

    // Project tasks from the MaintNorm texts are work orders.
    let works = by_remote_id(&world, &token, "work-orders").await;
    let tasks = tryton_read(
        &admin,
        "project.work",
        json!([["type", "=", "task"]]),
        json!(["name"]),
    )
    .await;
    let task = &works[&id_of(&tasks[0])];
    assert_eq!(task["title"], "PH639 RECTIFY STEERING FAULT");
    assert_eq!(task["status"], "open");
    assert_eq!(task["remote_status"], "Open");
    assert_eq!(
        task["custom_fields"]["project"],
        "Excavator fleet maintenance"
    );

    // Changes through Tryton's own API: a lot renumbered, a new lot, a purchase confirmed,
    // a task done, a task deleted.
    let (_, cursor) = world.list_all_from(&token, "assets", None).await;
    admin
        .call(
            "model.stock.lot.write",
            vec![json!([lot["id"]]), json!({"number": "4751-R"})],
        )
        .await
        .unwrap();
    let product_id = products[0]["id"].clone();
    let created = admin
        .call(
            "model.stock.lot.create",
            vec![json!([{"number": "NEW-0001", "product": product_id}])],
        )
        .await
        .unwrap();
    let new_lot = created[0].as_i64().unwrap().to_string();
    let draft = tryton_read(
        &admin,
        "purchase.purchase",
        json!([["state", "=", "draft"]]),
        json!(["id"]),
    )
    .await;
    admin
        .call(
            "model.purchase.purchase.quote",
            vec![json!([draft[0]["id"]])],
        )
        .await
        .unwrap();
    let done_status = tryton_read(
        &admin,
        "project.work.status",
        json!([["progress", "=", 1]]),
        json!(["name"]),
    )
    .await;
    admin
        .call(
            "model.project.work.write",
            vec![
                json!([tasks[1]["id"]]),
                json!({"status": done_status[0]["id"], "progress": 1.0}),
            ],
        )
        .await
        .unwrap();
    admin
        .call("model.project.work.delete", vec![json!([tasks[2]["id"]])])
        .await
        .unwrap();

    let run = world.sync_and_wait(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["kind"], "incremental", "{run}");
    assert_eq!(run["records_created"], 1, "{run}");
    assert_eq!(run["records_updated"], 3, "{run}");
    assert_eq!(run["records_deleted"], 1, "{run}");

    let (changed, _) = world.list_all_from(&token, "assets", Some(&cursor)).await;
    let changed: HashMap<String, Value> = changed
        .into_iter()
        .map(|record| (record["remote_id"].as_str().unwrap().to_owned(), record))
        .collect();
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert_eq!(changed[&id_of(lot)]["serial_number"], "4751-R");
    assert_eq!(changed[&new_lot]["serial_number"], "NEW-0001");
    assert_eq!(changed[&new_lot]["name"], "CR1000");

    let purchase_orders = by_remote_id(&world, &token, "purchase-orders").await;
    assert_eq!(
        purchase_orders[&id_of(&draft[0])]["status"],
        "pending_approval"
    );
    let works = by_remote_id(&world, &token, "work-orders").await;
    assert_eq!(works[&id_of(&tasks[1])]["status"], "completed");
    assert_eq!(works[&id_of(&tasks[1])]["remote_status"], "Done");
    assert!(
        !works.contains_key(&id_of(&tasks[2])),
        "a deleted task is listed only with include_deleted"
    );
    let deleted = world
        .admin_list_path(&format!(
            "/v1/connections/{id}/work-orders?include_deleted=true"
        ))
        .await;
    let deleted = deleted
        .iter()
        .find(|record| record["remote_id"] == id_of(&tasks[2]).as_str())
        .expect("the deleted task is kept");
    assert!(deleted["remote_deleted_at"].is_string(), "{deleted}");

    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_initial_and_incremental_sync_of_a_real_tryton() {
    initial_and_incremental_sync(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_initial_and_incremental_sync_of_a_real_tryton() {
    initial_and_incremental_sync(Backend::Postgres).await;
}

/// Wrong credentials, an unknown database and an unreachable host are each refused at connect
/// time with their own problem, and nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_are_distinct_and_create_nothing() {
    let tryton = TrytonServer::start(Template::Empty).await;
    let world = world(Backend::Sqlite).await;
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{address}")
    };
    let cases = [
        (
            json!({"base_url": tryton.base_url, "database": DATABASE,
                   "username": USER.0, "password": "not the password"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "credentials_rejected",
            "refused the login of `millrace`",
        ),
        (
            json!({"base_url": tryton.base_url, "database": "no_such_db",
                   "username": USER.0, "password": USER.1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "has no database `no_such_db`",
        ),
        (
            json!({"base_url": unreachable, "database": DATABASE,
                   "username": USER.0, "password": USER.1}),
            StatusCode::BAD_GATEWAY,
            "source_unreachable",
            "cannot reach the Tryton server",
        ),
        (
            json!({"base_url": tryton.base_url, "database": DATABASE, "username": USER.0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "`password` is required",
        ),
    ];
    for (credentials, status, code, detail) in cases {
        let reply = world
            .admin(
                Method::POST,
                "/v1/connections",
                Some(json!({
                    "customer_id": "acme",
                    "system": millrace_tryton::SYSTEM_ID,
                    "deployment": "on_premise",
                    "credentials": credentials,
                })),
            )
            .await;
        reply.assert_problem(status, code);
        assert!(
            reply.body["detail"].as_str().unwrap().contains(detail),
            "{}",
            reply.body
        );
    }
    let connections = world.admin_get("/v1/connections").await;
    assert_eq!(connections["data"], json!([]), "{connections}");
    let credits = world.admin_get("/v1/credits").await;
    assert_eq!(credits["used"], 0, "{credits}");

    // The right credentials then connect.
    let (id, _) = world
        .connect("acme", tryton.credentials(&tryton.base_url), 30)
        .await;
    assert_all_idle(&world.wait_idle(&id).await);
    world.finish().await;
}
