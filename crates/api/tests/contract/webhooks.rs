//! Webhooks end to end: events of a real connection delivered to a receiver that verifies
//! every signature with an independent Standard Webhooks implementation, retries, the failing
//! mark, manual retry, and secrets that are shown once and never logged.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use millrace_connector::SandboxOptions;
use millrace_webhooks::SigningSecret;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::receiver::{accepted, Logs, Receiver};
use crate::support::Harness;

/// Registers `url` for `events` (all when `None`); returns the endpoint id and its secret.
async fn register(h: &Harness, url: &str, events: Option<Value>) -> (String, String) {
    let mut body = json!({ "url": url, "description": "test receiver" });
    if let Some(events) = events {
        body["events"] = events;
    }
    let reply = h.admin(Method::POST, "/v1/webhooks", Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let endpoint = &reply.body["endpoint"];
    assert_eq!(endpoint["url"], url);
    assert_eq!(endpoint["status"], "active");
    assert_eq!(endpoint["description"], "test receiver");
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let secret = reply.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (id, secret)
}

async fn deliveries(h: &Harness, endpoint_id: &str) -> Vec<Value> {
    let answer = h
        .admin_get(&format!("/v1/webhooks/{endpoint_id}/deliveries"))
        .await;
    answer["data"].as_array().unwrap().clone()
}

/// Waits until the endpoint's deliveries satisfy `done`; returns them.
async fn wait_for_deliveries(
    h: &Harness,
    endpoint_id: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let current = deliveries(h, endpoint_id).await;
        if done(&current) {
            return current;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "waited in vain for {what}: {current:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts neither the secret nor its key bytes' text appear in `text`.
fn assert_hidden(secret: &str, text: &str, place: &str) {
    let key = secret.trim_start_matches("whsec_");
    assert!(
        !text.contains(secret) && !text.contains(key),
        "the webhook secret appears in {place}"
    );
}

pub async fn a_connection_is_announced_signed_from_connect_to_disconnect(h: &mut Harness) {
    let logs = Logs::capture();
    let receiver = Receiver::start().await;
    let (endpoint_id, secret) = register(h, &receiver.url, None).await;
    receiver.control(&secret, 0).await;

    let sandbox = h.sandbox(SandboxOptions::default()).await;
    let (id, token) = h.connect_synced("acme", sandbox).await;
    let connection = h.admin_get(&format!("/v1/connections/{id}")).await;
    let synced: HashMap<String, u64> = connection["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|stream| stream["record_count"].as_u64() > Some(0))
        .map(|stream| {
            let object = stream["object"].as_str().unwrap().to_owned();
            (object, stream["record_count"].as_u64().unwrap())
        })
        .collect();
    assert!(synced.contains_key("work-orders"), "{connection}");

    // Deliveries run concurrently, so events may arrive in any order: wait for all of them.
    let received = receiver
        .wait_until("the initial sync's events", |received| {
            !accepted(received, "sync.completed").is_empty()
                && accepted(received, "records.changed").len() >= synced.len()
        })
        .await;
    for delivery in &received {
        assert_eq!(delivery["verified"], true, "{delivery}");
        assert_eq!(delivery["answered"], 204, "{delivery}");
        assert_eq!(delivery["content_type"], "application/json");
        assert_eq!(delivery["path"], "/hooks");
    }

    let created = accepted(&received, "connection.created");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["data"]["connection_id"], id.as_str());
    assert_eq!(created[0]["data"]["customer_id"], "acme");
    assert_eq!(created[0]["data"]["system"], "ibm_maximo");
    assert_eq!(created[0]["data"]["deployment"], "cloud");

    let completed = accepted(&received, "sync.completed");
    assert_eq!(completed.len(), 1);
    let run = &completed[0]["data"];
    assert_eq!(run["kind"], "initial");
    assert_eq!(run["trigger"], "connect");
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["connection_id"], id.as_str());
    assert_eq!(run["customer_id"], "acme");
    for (object, count) in &synced {
        assert_eq!(run["objects"][object]["created"], *count, "{run}");
    }

    // One records.changed per stream that stored something, whose cursor reads exactly the
    // changes it counts.
    let changed = accepted(&received, "records.changed");
    let announced: HashSet<&str> = changed
        .iter()
        .map(|event| event["data"]["object"].as_str().unwrap())
        .collect();
    let expected: HashSet<&str> = synced.keys().map(String::as_str).collect();
    assert_eq!(announced, expected);
    assert_eq!(changed.len(), expected.len(), "one event per stream");
    for event in &changed {
        let data = &event["data"];
        let object = data["object"].as_str().unwrap();
        assert_eq!(data["connection_id"], id.as_str());
        assert_eq!(data["kind"], "initial");
        assert_eq!(data["counts"]["created"], synced[object], "{data}");
        assert_eq!(data["counts"]["changed"], synced[object], "{data}");
        let cursor = data["cursor"].as_str().unwrap();
        let (records, _) = h.list_all_from(&token, object, Some(cursor)).await;
        assert_eq!(
            records.len() as u64,
            synced[object],
            "{object} from the event's cursor"
        );
    }

    let disconnect = format!("/v1/connections/{id}/disconnect");
    h.admin(Method::POST, &disconnect, None).await.ok();
    let received = receiver
        .wait_until("the disconnect", |received| {
            !accepted(received, "connection.disconnected").is_empty()
        })
        .await;
    let disconnected = accepted(&received, "connection.disconnected");
    assert_eq!(disconnected[0]["data"]["connection_id"], id.as_str());
    assert_eq!(disconnected[0]["data"]["customer_id"], "acme");

    // Each event arrived once, and the log of every attempt agrees.
    let ids: Vec<&str> = received
        .iter()
        .map(|delivery| delivery["webhook_id"].as_str().unwrap())
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "an event arrived twice: {ids:?}");
    let logged = wait_for_deliveries(h, &endpoint_id, "every delivery logged", |current| {
        current.len() == received.len()
            && current
                .iter()
                .all(|delivery| delivery["status"] == "succeeded")
    })
    .await;
    for delivery in &logged {
        let attempts = delivery["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{delivery}");
        assert_eq!(attempts[0]["status_code"], 204);
        assert_eq!(attempts[0]["succeeded"], true);
        assert!(attempts[0]["latency_ms"].is_u64());
        assert!(unique.contains(delivery["event_id"].as_str().unwrap()));
    }

    // The secret was shown once: no later answer and no log line holds it.
    for path in [
        "/v1/webhooks".to_owned(),
        format!("/v1/webhooks/{endpoint_id}"),
        format!("/v1/webhooks/{endpoint_id}/deliveries"),
    ] {
        let answer = h.admin_get(&path).await;
        assert_hidden(&secret, &answer.to_string(), &path);
    }
    let text = logs.text();
    assert!(
        text.contains("webhook delivered") && text.contains("webhook endpoint registered"),
        "the capture holds the worker's logs"
    );
    assert_hidden(&secret, &text, "the logs");
}

pub async fn a_receiver_failing_three_times_gets_the_event_on_the_fourth_attempt_once(
    h: &mut Harness,
) {
    let receiver = Receiver::start().await;
    let (endpoint_id, secret) =
        register(h, &receiver.url, Some(json!(["connection.created"]))).await;
    receiver.control(&secret, 3).await;

    let sandbox = h.synthetic_sandbox(20).await;
    let (id, _token) = h.connect("customer", h.credentials(sandbox), 30).await;
    receiver
        .wait_until("four attempts", |received| received.len() >= 4)
        .await;
    h.wait_idle(&id).await;
    // Past the retry schedule: a fifth attempt would have come by now.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let received = receiver.received().await;
    let answered: Vec<&Value> = received
        .iter()
        .map(|delivery| &delivery["answered"])
        .collect();
    assert_eq!(answered, [500, 500, 500, 204], "{received:#?}");
    assert!(received.iter().all(|delivery| delivery["verified"] == true));
    let event_id = &received[0]["webhook_id"];
    assert!(
        received
            .iter()
            .all(|delivery| delivery["webhook_id"] == *event_id),
        "every attempt carries the same webhook-id"
    );
    let event = &received[3]["payload"];
    assert_eq!(event["type"], "connection.created");
    assert_eq!(event["data"]["connection_id"], id.as_str());

    let logged = deliveries(h, &endpoint_id).await;
    assert_eq!(logged.len(), 1, "the filter left only connection.created");
    let delivery = &logged[0];
    assert_eq!(delivery["status"], "succeeded");
    assert_eq!(&delivery["event_id"], event_id);
    assert!(!delivery["delivered_at"].is_null());
    let attempts: Vec<(u64, u64, bool)> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| {
            (
                attempt["attempt"].as_u64().unwrap(),
                attempt["status_code"].as_u64().unwrap(),
                attempt["error"].is_null(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [
            (1, 500, false),
            (2, 500, false),
            (3, 500, false),
            (4, 204, true)
        ]
    );

    let endpoint = h.admin_get(&format!("/v1/webhooks/{endpoint_id}")).await;
    assert_eq!(endpoint["status"], "active", "{endpoint}");
    assert_eq!(endpoint["consecutive_failures"], 0);
}

pub async fn an_endpoint_that_keeps_failing_is_marked_until_a_manual_retry_succeeds(
    h: &mut Harness,
) {
    // Bad input is refused with a problem, and registers nothing.
    for body in [
        json!({}),
        json!({ "url": "" }),
        json!({ "url": "not a url" }),
        json!({ "url": "ftp://hooks.example.com/" }),
        json!({ "url": "https://user:password@hooks.example.com/" }),
        json!({ "url": "https://hooks.example.com/", "events": [] }),
        json!({ "url": "https://hooks.example.com/", "events": ["record.changed"] }),
        json!({ "url": "https://hooks.example.com/", "events": "sync.failed" }),
        json!({ "url": "https://hooks.example.com/", "secret": "mine" }),
    ] {
        let reply = h.admin(Method::POST, "/v1/webhooks", Some(body)).await;
        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
    for (method, path) in [
        (Method::GET, "/v1/webhooks/wh_nope"),
        (Method::DELETE, "/v1/webhooks/wh_nope"),
        (Method::GET, "/v1/webhooks/wh_nope/deliveries"),
        (Method::POST, "/v1/webhooks/deliveries/dlv_nope/retry"),
    ] {
        let reply = h.admin(method, path, None).await;
        reply.assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    let anonymous = h.call(None, Method::GET, "/v1/webhooks", None).await;
    anonymous.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(h.admin_get("/v1/webhooks").await["data"], json!([]));

    // The independent verifier refuses what it should: a body signed under another secret.
    let receiver = Receiver::start().await;
    receiver
        .control(&SigningSecret::generate().to_text(), 0)
        .await;
    let timestamp = chrono::Utc::now().timestamp();
    let forged = h
        .http
        .post(&receiver.url)
        .header("webhook-id", "msg_forged")
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            SigningSecret::generate().sign("msg_forged", timestamp, b"{}"),
        )
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let refused = receiver.received().await;
    assert_eq!(refused[0]["verified"], false, "{refused:?}");

    let receiver = Receiver::start().await;
    let (endpoint_id, secret) =
        register(h, &receiver.url, Some(json!(["connection.created"]))).await;
    receiver.control(&secret, 1000).await;
    let sandbox = h.synthetic_sandbox(20).await;
    let (_id, token) = h.connect("customer", h.credentials(sandbox), 30).await;
    let with_token = h
        .call(Some(&token), Method::GET, "/v1/webhooks", None)
        .await;
    with_token.assert_problem(StatusCode::FORBIDDEN, "forbidden");

    // Four attempts (the test schedule has three retries), then the delivery fails and marks
    // its endpoint.
    let logged = wait_for_deliveries(h, &endpoint_id, "the schedule to run out", |current| {
        current.len() == 1 && current[0]["status"] == "failed"
    })
    .await;
    let delivery_id = logged[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(logged[0]["attempts"].as_array().unwrap().len(), 4);
    assert!(logged[0]["next_attempt_at"].is_null());
    let endpoint = h.admin_get(&format!("/v1/webhooks/{endpoint_id}")).await;
    assert_eq!(endpoint["status"], "failing", "{endpoint}");
    assert_eq!(endpoint["consecutive_failures"], 4);
    assert!(!endpoint["failing_since"].is_null());
    let listed = h.admin_get("/v1/webhooks").await;
    assert_eq!(listed["data"][0]["status"], "failing");

    // The receiver recovers; a manual retry sends the event at once and clears the mark.
    receiver.control(&secret, 0).await;
    let retry = format!("/v1/webhooks/deliveries/{delivery_id}/retry");
    let reply = h.admin(Method::POST, &retry, None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(reply.body["id"], delivery_id.as_str());
    let logged = wait_for_deliveries(h, &endpoint_id, "the manual retry", |current| {
        current[0]["status"] == "succeeded"
    })
    .await;
    let attempts = logged[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 5);
    assert_eq!(attempts[4]["status_code"], 204);
    let endpoint = h.admin_get(&format!("/v1/webhooks/{endpoint_id}")).await;
    assert_eq!(endpoint["status"], "active", "{endpoint}");
    assert_eq!(endpoint["consecutive_failures"], 0);
    assert!(endpoint["failing_since"].is_null());
    let received = receiver.received().await;
    assert_eq!(accepted(&received, "connection.created").len(), 1);
    assert!(received.iter().all(|delivery| delivery["verified"] == true));

    let endpoint_path = format!("/v1/webhooks/{endpoint_id}");
    let reply = h.admin(Method::DELETE, &endpoint_path, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = h.admin(Method::GET, &endpoint_path, None).await;
    reply.assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(h.admin_get("/v1/webhooks").await["data"], json!([]));
}
