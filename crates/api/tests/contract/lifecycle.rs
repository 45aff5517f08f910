//! The connection lifecycle: isolation of tokens, disconnect, credits, reauthorisation, shapes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use millrace_connector::SandboxOptions;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{assert_all_idle, stream, unique_remote_ids, Harness};

pub async fn a_token_never_reads_another_connections_data(h: &mut Harness) {
    let sandbox_a = h.synthetic_sandbox(150).await;
    let sandbox_b = h
        .sandbox(SandboxOptions {
            synthetic_work_orders: Some(230),
            seed: 2,
            ..SandboxOptions::default()
        })
        .await;
    let (id_a, token_a) = h.connect_synced("customer-a", sandbox_a).await;
    let (id_b, token_b) = h.connect_synced("customer-b", sandbox_b).await;

    let orders_a = h.list_all(&token_a, "work-orders").await;
    let orders_b = h.list_all(&token_b, "work-orders").await;
    assert_eq!(unique_remote_ids(&orders_a).len(), 150);
    assert_eq!(unique_remote_ids(&orders_b).len(), 230);
    let ids_a: HashSet<&str> = orders_a.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let ids_b: HashSet<&str> = orders_b.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids_a.len(), 150);
    assert!(
        ids_a.is_disjoint(&ids_b),
        "Millrace ids are shared between connections"
    );

    let record_a = &orders_a[0];
    let path = format!("/v1/work-orders/{}", record_a["id"].as_str().unwrap());
    let own = h.token_get(&token_a, &path).await;
    assert_eq!(own["remote_id"], record_a["remote_id"]);
    let foreign = h.call(Some(&token_b), Method::GET, &path, None).await;
    foreign.assert_problem(StatusCode::NOT_FOUND, "not_found");

    assert_eq!(
        h.token_get(&token_a, "/v1/connection").await["id"],
        id_a.as_str()
    );
    assert_eq!(
        h.token_get(&token_b, "/v1/connection").await["id"],
        id_b.as_str()
    );
    for path in [
        format!("/v1/connections/{id_a}"),
        format!("/v1/connections/{id_b}/work-orders"),
        "/v1/connections".to_owned(),
        "/v1/credits".to_owned(),
    ] {
        let reply = h.call(Some(&token_a), Method::GET, &path, None).await;
        reply.assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
}

pub async fn disconnect_takes_effect_at_once_even_mid_sync(h: &mut Harness) {
    let sandbox = h.synthetic_sandbox(20_000).await;
    let (id, token) = h.connect("customer", h.credentials(sandbox), 30).await;
    let used_before = h.admin_get("/v1/credits").await["used"].as_u64().unwrap();
    assert_eq!(used_before, 2);

    // Wait until the work orders are being read, a few pages in.
    let started = Instant::now();
    loop {
        let connection = h.admin_get(&format!("/v1/connections/{id}")).await;
        let orders = stream(&connection, "work-orders");
        if orders["state"] == "running" && orders["progress"]["pages_read"].as_u64() >= Some(2) {
            break;
        }
        assert!(
            orders["state"] != "idle",
            "the sync finished before it could be interrupted"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no progress: {connection}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let reply = h
        .admin(
            Method::POST,
            &format!("/v1/connections/{id}/disconnect"),
            None,
        )
        .await;
    let connection = reply.ok();
    assert_eq!(connection["status"], "disconnected");
    assert!(!connection["disconnected_at"].is_null());
    let refused = h
        .call(Some(&token), Method::GET, "/v1/work-orders", None)
        .await;
    refused.assert_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    let stored_at_disconnect = h.admin_list_all(&id, "work-orders").await.len();
    assert!(
        stored_at_disconnect > 0 && stored_at_disconnect < 20_000,
        "{stored_at_disconnect}"
    );

    let runs = loop {
        let runs = h.runs(&id).await;
        if runs[0]["status"] != "running" {
            break runs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the run was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "cancelled", "{}", runs[0]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored_later = h.admin_list_all(&id, "work-orders").await;
    assert_eq!(
        stored_later.len(),
        stored_at_disconnect,
        "pages were written after disconnect"
    );

    let credits = h.admin_get("/v1/credits").await;
    assert_eq!(credits["used"], 0);
    assert_eq!(credits["available"], credits["total"]);
    let ledger = credits["ledger"].as_array().unwrap();
    let release = ledger
        .iter()
        .find(|entry| entry["connection_id"] == id.as_str() && entry["reason"] == "release")
        .unwrap_or_else(|| panic!("no release in {ledger:?}"));
    // The ledger counts from the pool's side: a reservation takes, a release gives back.
    assert_eq!(release["delta"], 2);

    let again = h
        .admin(
            Method::POST,
            &format!("/v1/connections/{id}/disconnect"),
            None,
        )
        .await;
    assert_eq!(again.ok()["status"], "disconnected");
    let credits_again = h.admin_get("/v1/credits").await;
    assert_eq!(credits_again["used"], 0);
    assert_eq!(
        credits_again["ledger"].as_array().unwrap().len(),
        ledger.len()
    );
    let sync = h
        .admin(Method::POST, &format!("/v1/connections/{id}/sync"), None)
        .await;
    sync.assert_problem(StatusCode::CONFLICT, "connection_inactive");

    let deleted = h
        .admin(Method::DELETE, &format!("/v1/connections/{id}/data"), None)
        .await;
    assert_eq!(deleted.ok()["deleted_records"], stored_at_disconnect as u64);
    assert!(h.admin_list_all(&id, "work-orders").await.is_empty());
    assert_eq!(
        h.runs(&id).await.len(),
        1,
        "a disconnected connection synced again"
    );
}

pub async fn credits_are_reserved_by_tier_refused_when_short_and_returned(h: &mut Harness) {
    h.reconfigure(|config| config.credit_pool = 5).await;
    let sandbox = h.synthetic_sandbox(10).await;
    let systems = h.admin_get("/v1/systems").await;
    let maximo = &systems["data"][0];
    assert_eq!(maximo["id"], "ibm_maximo");
    assert_eq!(maximo["tier"], 2);
    assert_eq!(maximo["credits"], json!({"cloud": 2, "on_premise": 4}));

    let create = |deployment: &str| {
        json!({
            "customer_id": "customer",
            "system": "ibm_maximo",
            "deployment": deployment,
            "credentials": h.credentials(sandbox),
        })
    };
    let cloud = h
        .admin(Method::POST, "/v1/connections", Some(create("cloud")))
        .await;
    assert_eq!(cloud.status, StatusCode::CREATED, "{}", cloud.body);
    assert_eq!(cloud.body["connection"]["credits"], 2);
    let cloud_id = cloud.body["connection"]["id"].as_str().unwrap().to_owned();
    let credits = h.admin_get("/v1/credits").await;
    assert_eq!(
        (credits["total"].as_u64(), credits["used"].as_u64()),
        (Some(5), Some(2))
    );
    assert_eq!(credits["available"], 3);

    let refused = h
        .admin(Method::POST, "/v1/connections", Some(create("on_premise")))
        .await;
    refused.assert_problem(StatusCode::CONFLICT, "insufficient_credits");
    let connections = h.admin_get("/v1/connections").await;
    assert_eq!(
        connections["data"].as_array().unwrap().len(),
        1,
        "a refused connect created one"
    );
    let after_refusal = h.admin_get("/v1/credits").await;
    assert_eq!(after_refusal["used"], 2);
    assert_eq!(after_refusal["ledger"], credits["ledger"]);

    h.admin(
        Method::POST,
        &format!("/v1/connections/{cloud_id}/disconnect"),
        None,
    )
    .await
    .ok();
    assert_eq!(h.admin_get("/v1/credits").await["used"], 0);
    let on_premise = h
        .admin(Method::POST, "/v1/connections", Some(create("on_premise")))
        .await;
    assert_eq!(
        on_premise.status,
        StatusCode::CREATED,
        "{}",
        on_premise.body
    );
    assert_eq!(on_premise.body["connection"]["credits"], 4);
    let credits = h.admin_get("/v1/credits").await;
    assert_eq!(
        (credits["used"].as_u64(), credits["available"].as_u64()),
        (Some(4), Some(1))
    );
    let reasons: Vec<(&str, i64)> = credits["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["reason"].as_str().unwrap(),
                entry["delta"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut sorted = reasons.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![("release", 2), ("reserve", -4), ("reserve", -2)],
        "{reasons:?}"
    );
}

pub async fn rejected_credentials_make_the_connection_reauth_required(h: &mut Harness) {
    let sandbox = h.synthetic_sandbox(30).await;
    let (id, token) = h.connect_synced("customer", sandbox).await;
    let used = h.admin_get("/v1/credits").await["used"].clone();
    assert_eq!(used, 2);

    h.sandbox_ok(
        sandbox,
        Method::POST,
        "faults",
        json!({"reject_auth": true}),
    )
    .await;
    let runs_before = h.runs(&id).await.len();
    let asked = h
        .call(Some(&token), Method::POST, "/v1/connection/sync", None)
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.body);
    let started = Instant::now();
    while h.runs(&id).await.len() == runs_before {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the asked-for sync never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connection = h.wait_idle(&id).await;
    assert_eq!(connection["status"], "reauth_required", "{connection}");
    for stream in connection["streams"].as_array().unwrap() {
        assert_eq!(stream["state"], "paused", "{stream}");
    }
    let runs = h.runs(&id).await;
    assert_eq!(runs[0]["status"], "failed", "{}", runs[0]);
    assert!(
        runs[0]["error"].as_str().unwrap().contains("rejected"),
        "{}",
        runs[0]
    );

    let refused = h
        .call(Some(&token), Method::GET, "/v1/work-orders", None)
        .await;
    refused.assert_problem(StatusCode::UNAUTHORIZED, "reauth_required");
    assert_eq!(
        h.admin_list_all(&id, "work-orders").await.len(),
        30,
        "data was not kept"
    );
    assert_eq!(
        h.admin_get("/v1/credits").await["used"],
        used,
        "credits were not held"
    );

    // Scheduled syncs pause: nothing runs again, even when asked for.
    let again = h
        .admin(Method::POST, &format!("/v1/connections/{id}/sync"), None)
        .await;
    again.assert_problem(StatusCode::CONFLICT, "connection_inactive");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.runs(&id).await.len(), runs.len());
}

pub async fn shapes_clients_rely_on(h: &mut Harness) {
    let sandbox = h.synthetic_sandbox(10).await;
    let body = json!({
        "customer_id": "customer-7",
        "system": "ibm_maximo",
        "deployment": "cloud",
        "credentials": h.credentials(sandbox),
        "name": "Plant 7 Maximo",
    });
    let created = h.admin(Method::POST, "/v1/connections", Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let keys: HashSet<&str> = created
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, HashSet::from(["connection", "token"]));
    let token = created.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with(millrace_sync::TOKEN_PREFIX), "{token}");
    assert!(
        token.len() >= millrace_sync::TOKEN_PREFIX.len() + 32,
        "under 128 bits: {token}"
    );
    let connection = &created.body["connection"];
    assert_connection_shape(connection);
    assert_eq!(connection["customer_id"], "customer-7");
    assert_eq!(connection["system"], "ibm_maximo");
    assert_eq!(connection["deployment"], "cloud");
    assert_eq!(connection["name"], "Plant 7 Maximo");
    assert_eq!(connection["status"], "active");
    assert_eq!(connection["credits"], 2);
    assert!(connection["disconnected_at"].is_null());
    let id = connection["id"].as_str().unwrap().to_owned();

    let synced = h.wait_idle(&id).await;
    assert_all_idle(&synced);
    assert_connection_shape(&synced);
    assert_eq!(stream(&synced, "work-orders")["record_count"], 10);
    assert!(!stream(&synced, "work-orders")["watermark"].is_null());
    let listed = h.admin(Method::GET, "/v1/connections", None).await;
    let text = listed.body.to_string();
    assert!(
        !text.contains(&token),
        "the token appears in a later answer"
    );
    assert!(!h
        .admin_get(&format!("/v1/connections/{id}"))
        .await
        .to_string()
        .contains(&token));
    let own = h.token_get(&token, "/v1/connection").await;
    assert_connection_shape(&own);
    assert_eq!(own["id"], id.as_str());

    let page = h.token_get(&token, "/v1/work-orders?limit=3").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    assert_eq!(page["has_more"], true);
    assert!(page["next_cursor"].is_string());
    let record = &page["data"][0];
    for field in [
        "id",
        "remote_id",
        "created_at",
        "modified_at",
        "remote_created_at",
        "remote_updated_at",
        "remote_deleted_at",
        "custom_fields",
    ] {
        assert!(
            record.get(field).is_some(),
            "record lacks `{field}`: {record}"
        );
    }
    assert!(
        record.get("remote_data").is_none(),
        "remote_data sent unasked: {record}"
    );
    let with_raw = h
        .token_get(&token, "/v1/work-orders?limit=1&include_remote_data=true")
        .await;
    assert!(with_raw["data"][0]["remote_data"].is_object(), "{with_raw}");

    let reply = h.call(None, Method::GET, "/openapi.json", None).await;
    assert!(reply.request_id.is_some());
    let openapi = reply.ok();
    assert!(
        openapi["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        openapi["openapi"]
    );
    let paths = openapi["paths"].as_object().unwrap();
    for path in [
        "/v1/systems",
        "/v1/credits",
        "/v1/connections",
        "/v1/connections/{id}",
        "/v1/connections/{id}/disconnect",
        "/v1/connections/{id}/token",
        "/v1/connections/{id}/data",
        "/v1/connections/{id}/runs",
        "/v1/connection",
        "/v1/connection/sync",
        "/v1/{object}",
        "/v1/{object}/{id}",
    ] {
        assert!(paths.contains_key(path), "OpenAPI lacks {path}");
    }
}

fn assert_connection_shape(connection: &Value) {
    for field in [
        "id",
        "customer_id",
        "system",
        "deployment",
        "name",
        "status",
        "credits",
        "created_at",
        "disconnected_at",
        "streams",
    ] {
        assert!(
            connection.get(field).is_some(),
            "connection lacks `{field}`: {connection}"
        );
    }
    let streams = connection["streams"].as_array().unwrap();
    assert!(streams.len() >= 5, "{connection}");
    for stream in streams {
        for field in [
            "object",
            "state",
            "watermark",
            "last_successful_sync_at",
            "record_count",
            "last_error",
        ] {
            assert!(
                stream.get(field).is_some(),
                "stream lacks `{field}`: {stream}"
            );
        }
        let state = stream["state"].as_str().unwrap();
        assert!(
            ["pending", "running", "idle", "failed", "paused"].contains(&state),
            "{state}"
        );
    }
}
