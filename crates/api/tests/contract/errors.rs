//! Bad input: each gets a problem document with a stable code, and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{Harness, Reply};

pub async fn bad_input_gets_a_clear_problem_and_changes_nothing(h: &mut Harness) {
    let sandbox = h.synthetic_sandbox(20).await;
    let (id_a, token_a) = h.connect_synced("customer-a", sandbox).await;
    let (_id_b, token_b) = h.connect_synced("customer-b", sandbox).await;
    // What bad input must not change: which connections exist, their state and credits. (A
    // finished run's schedule may still be written after `connect_synced` returns.)
    let summary = |list: Value| -> Vec<Value> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| json!([c["id"], c["customer_id"], c["status"], c["credits"]]))
            .collect()
    };
    let connections_before = summary(h.admin_get("/v1/connections").await);
    let credits_before = h.admin_get("/v1/credits").await;

    let malformed = h
        .http
        .post(format!("{}/v1/connections", h.base))
        .bearer_auth("mra_e2e_admin_key_for_tests")
        .header("content-type", "application/json")
        .body("{\"customer_id\": \"x\", ")
        .send()
        .await
        .unwrap();
    Reply::read(malformed)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");

    let body = |change: &dyn Fn(&mut Value)| {
        let mut body = json!({
            "customer_id": "customer-c",
            "system": "ibm_maximo",
            "deployment": "cloud",
            "credentials": h.credentials(sandbox),
        });
        change(&mut body);
        Some(body)
    };
    let cases: Vec<(Option<Value>, &str)> = vec![
        (body(&|b| b["system"] = json!("sap_r2")), "unknown_system"),
        (
            body(&|b| b["credentials"]["api_key"] = json!("not-the-key")),
            "credentials_rejected",
        ),
        (body(&|b| b["lookback_days"] = json!(0)), "invalid_request"),
        (
            body(&|b| b["lookback_days"] = json!(100_000)),
            "invalid_request",
        ),
        (
            body(&|b| b["deployment"] = json!("moon")),
            "invalid_request",
        ),
        (body(&|b| b["surprise"] = json!(true)), "invalid_request"),
        (
            body(&|b| b["customer_id"] = json!("evil\n2026-12-04T17:00:00Z INFO forged")),
            "invalid_request",
        ),
        (body(&|b| b["name"] = json!("bell\u{7}")), "invalid_request"),
    ];
    for (body, code) in cases {
        let reply = h.admin(Method::POST, "/v1/connections", body.clone()).await;
        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, code);
    }
    assert_eq!(
        summary(h.admin_get("/v1/connections").await),
        connections_before,
        "a connection appeared"
    );
    assert_eq!(
        h.admin_get("/v1/credits").await,
        credits_before,
        "credits moved"
    );

    let forged = h
        .call(
            Some(&token_a),
            Method::GET,
            "/v1/work-orders?cursor=abc.def",
            None,
        )
        .await;
    forged.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_cursor");
    let (_, cursor_b) = h.list_all_from(&token_b, "work-orders", None).await;
    let mut url = reqwest::Url::parse(&format!("{}/v1/work-orders", h.base)).unwrap();
    url.query_pairs_mut().append_pair("cursor", &cursor_b);
    let foreign = Reply::read(h.http.get(url).bearer_auth(&token_a).send().await.unwrap()).await;
    foreign.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_cursor");
    let mut url = reqwest::Url::parse(&format!("{}/v1/assets", h.base)).unwrap();
    url.query_pairs_mut().append_pair("cursor", &cursor_b);
    let other_object =
        Reply::read(h.http.get(url).bearer_auth(&token_b).send().await.unwrap()).await;
    other_object.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_cursor");

    let unknown = h
        .call(Some(&token_a), Method::GET, "/v1/widgets", None)
        .await;
    unknown.assert_problem(StatusCode::NOT_FOUND, "unknown_object");
    let bad_limit = h
        .call(Some(&token_a), Method::GET, "/v1/work-orders?limit=0", None)
        .await;
    bad_limit.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let missing = h.call(None, Method::GET, "/v1/work-orders", None).await;
    missing.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let wrong_token = format!("{}{}", millrace_sync::TOKEN_PREFIX, "0".repeat(64));
    let wrong = h
        .call(Some(&wrong_token), Method::GET, "/v1/work-orders", None)
        .await;
    wrong.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let wrong_key = h
        .call(
            Some("mra_not_the_key"),
            Method::GET,
            "/v1/connections",
            None,
        )
        .await;
    wrong_key.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");

    let rotated = h
        .admin(Method::POST, &format!("/v1/connections/{id_a}/token"), None)
        .await;
    let new_token = rotated.ok()["token"].as_str().unwrap().to_owned();
    assert_ne!(new_token, token_a);
    let old = h
        .call(Some(&token_a), Method::GET, "/v1/work-orders", None)
        .await;
    old.assert_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    let page = h.token_get(&new_token, "/v1/work-orders").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 20);
}
