//! Webhook endpoints, the outbox written with the changes it announces, and deliveries.

use std::collections::{BTreeMap, HashSet};

use millrace_model::{DeliveryStatus, EndpointStatus, EventType, ObjectType, RunKind, RunStatus};
use millrace_store::{
    ApplyStats, AttemptRecord, CursorPosition, NewWebhookEndpoint, RunOutcome, Store, StoredEvent,
    StreamCounts,
};
use serde_json::json;

use crate::{asset, checkpoint, create, t, Ctx};

/// Registers an endpoint taking `events` (every type when `None`).
async fn endpoint(store: &Store, id: &str, events: Option<Vec<EventType>>) {
    store
        .create_webhook_endpoint(NewWebhookEndpoint {
            id: id.to_owned(),
            url: format!("https://example.test/{id}"),
            description: format!("endpoint {id}"),
            events,
            sealed_secret: format!("sealed-{id}").into_bytes(),
            created_at: t(0),
        })
        .await
        .unwrap();
}

async fn events(store: &Store) -> Vec<StoredEvent> {
    store.webhook_events(None, 1000).await.unwrap()
}

fn types(events: &[StoredEvent]) -> Vec<EventType> {
    events.iter().map(|event| event.event_type).collect()
}

fn failure(at: i64, status_code: u16) -> AttemptRecord {
    AttemptRecord {
        attempted_at: t(at),
        status_code: Some(status_code),
        latency_ms: 12,
        error: Some(format!("HTTP {status_code}")),
    }
}

fn success(at: i64) -> AttemptRecord {
    AttemptRecord {
        attempted_at: t(at),
        status_code: Some(204),
        latency_ms: 7,
        error: None,
    }
}

pub async fn connection_changes_write_events_and_queue_deliveries(ctx: Ctx) {
    let store = &ctx.store;
    endpoint(store, "all", None).await;
    endpoint(store, "gone", Some(vec![EventType::ConnectionDisconnected])).await;

    create(store, "c1").await;
    create(store, "c2").await;
    store.disconnect("c1", t(10)).await.unwrap();
    store.disconnect("c1", t(20)).await.unwrap();
    store
        .set_reauth_required("c2", "password expired")
        .await
        .unwrap();
    store.set_reauth_required("c2", "again").await.unwrap();

    let written = events(store).await;
    assert_eq!(
        types(&written),
        [
            EventType::ConnectionCreated,
            EventType::ConnectionCreated,
            EventType::ConnectionDisconnected,
            EventType::ConnectionReauthRequired,
        ],
        "a second disconnect or reauth changes nothing and announces nothing"
    );
    let created = &written[0].payload;
    assert_eq!(created["type"], "connection.created");
    assert_eq!(created["timestamp"], "2024-01-01T00:00:00.000000Z");
    assert_eq!(created["data"]["connection_id"], "c1");
    assert_eq!(created["data"]["customer_id"], "customer");
    assert_eq!(created["data"]["system"], "ibm_maximo");
    assert_eq!(created["data"]["credits"], 1);
    assert_eq!(written[0].connection_id.as_deref(), Some("c1"));
    assert!(written.iter().all(|event| event.id.starts_with("msg_")));
    assert_eq!(
        written[2].payload["data"]["disconnected_at"],
        "2024-01-01T00:00:10Z"
    );
    assert_eq!(written[3].payload["data"]["reason"], "password expired");
    assert_eq!(written[3].payload["data"]["customer_id"], "customer");

    let to_all = store.webhook_deliveries("all", 100).await.unwrap();
    assert_eq!(to_all.len(), 4, "the unfiltered endpoint gets every event");
    assert!(
        to_all
            .iter()
            .all(|delivery| delivery.status == DeliveryStatus::Pending
                && delivery.attempts.is_empty())
    );
    let to_gone = store.webhook_deliveries("gone", 100).await.unwrap();
    assert_eq!(to_gone.len(), 1, "the filter holds: {to_gone:?}");
    assert_eq!(to_gone[0].event_type, EventType::ConnectionDisconnected);
    assert_eq!(to_gone[0].event_id, written[2].id);
    assert_eq!(to_gone[0].next_attempt_at, Some(t(10)), "due at once");

    // An endpoint registered later gets only later events.
    endpoint(store, "late", None).await;
    assert!(store
        .webhook_deliveries("late", 100)
        .await
        .unwrap()
        .is_empty());
    let listed = store.webhook_endpoints().await.unwrap();
    assert_eq!(listed.len(), 3);
    let gone = store.webhook_endpoint("gone").await.unwrap().unwrap();
    assert_eq!(gone.events, Some(vec![EventType::ConnectionDisconnected]));
    assert_eq!(gone.status, EndpointStatus::Active);
    assert_eq!(gone.description, "endpoint gone");
    assert_eq!(
        store.webhook_sealed_secret("gone").await.unwrap(),
        Some(b"sealed-gone".to_vec())
    );
    assert_eq!(store.webhook_endpoint("nope").await.unwrap(), None);
}

pub async fn completed_streams_announce_their_changes_with_a_position(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    let assets = ObjectType::Assets;
    let records_changed = |events: Vec<StoredEvent>| {
        events
            .into_iter()
            .filter(|event| event.event_type == EventType::RecordsChanged)
            .collect::<Vec<_>>()
    };

    // A first read stores three assets, after position 0.
    assert_eq!(store.change_seq("c1").await.unwrap(), 0);
    let page = ["a1", "a2", "a3"].map(|id| asset("c1", id, "h1", json!({"name": id})));
    let mut first = checkpoint("run-1", 3);
    first.changes_after_seq = Some(0);
    store
        .apply_page("c1", assets, &page, &first, t(10))
        .await
        .unwrap();
    store
        .complete_stream("c1", assets, Some(t(-50)), t(11))
        .await
        .unwrap();

    let announced = records_changed(events(store).await);
    assert_eq!(announced.len(), 1);
    let data = &announced[0].payload["data"];
    assert_eq!(data["object"], "assets");
    assert_eq!(data["run_id"], "run-1");
    assert_eq!(data["kind"], "initial");
    assert_eq!(data["connection_id"], "c1");
    assert_eq!(
        data["counts"],
        json!({"changed": 3, "created": 3, "updated": 0, "deleted": 0})
    );
    assert_eq!(
        announced[0].cursor,
        Some(CursorPosition {
            object: assets,
            after_seq: 0,
            epoch: 0
        })
    );

    // A read that changes nothing announces nothing.
    let after_first = store.change_seq("c1").await.unwrap();
    assert_eq!(after_first, 3);
    let mut second = checkpoint("run-2", 3);
    second.changes_after_seq = Some(after_first);
    store
        .apply_page("c1", assets, &page, &second, t(20))
        .await
        .unwrap();
    store
        .complete_stream("c1", assets, None, t(21))
        .await
        .unwrap();
    assert_eq!(records_changed(events(store).await).len(), 1);

    // One update and one deletion, the update stored before a crash and the deletion by the
    // resumed read: the completion counts both from the position the read began at.
    let mut third = checkpoint("run-3", 1);
    third.changes_after_seq = Some(after_first);
    let changed = [asset("c1", "a1", "h2", json!({"name": "a1 renamed"}))];
    store
        .apply_page("c1", assets, &changed, &third, t(30))
        .await
        .unwrap();
    let marked = store
        .mark_remote_deleted("c1", assets, &["a2".to_owned()], t(31))
        .await
        .unwrap();
    assert_eq!(marked, 1);
    store
        .complete_stream("c1", assets, None, t(32))
        .await
        .unwrap();

    let announced = records_changed(events(store).await);
    assert_eq!(announced.len(), 2);
    assert_eq!(
        announced[1].payload["data"]["counts"],
        json!({"changed": 2, "created": 0, "updated": 1, "deleted": 1})
    );
    assert_eq!(announced[1].cursor.unwrap().after_seq, after_first);

    // A checkpoint without a position (an older version's) announces nothing.
    let page = [asset("c1", "a9", "h1", json!({"name": "a9"}))];
    store
        .apply_page("c1", assets, &page, &checkpoint("run-4", 1), t(40))
        .await
        .unwrap();
    store
        .complete_stream("c1", assets, None, t(41))
        .await
        .unwrap();
    assert_eq!(records_changed(events(store).await).len(), 2);

    // After the data is deleted, positions are in the new epoch.
    store.disconnect("c1", t(50)).await.unwrap();
    store.delete_data("c1").await.unwrap();
    let epoch = store.data_epoch("c1").await.unwrap();
    assert_eq!(epoch, 1);
}

pub async fn finished_runs_announce_themselves(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    endpoint(
        store,
        "runs",
        Some(vec![EventType::SyncCompleted, EventType::SyncFailed]),
    )
    .await;

    let succeeded = store
        .start_run("c1", RunKind::Initial, "connect", t(10))
        .await
        .unwrap();
    let objects = BTreeMap::from([(
        ObjectType::Assets,
        StreamCounts {
            read: 5,
            created: 4,
            updated: 1,
            unchanged: 0,
            deleted: 0,
        },
    )]);
    let outcome = RunOutcome {
        status: RunStatus::Succeeded,
        finished_at: t(15),
        records_read: 5,
        stats: ApplyStats {
            created: 4,
            updated: 1,
            unchanged: 0,
        },
        records_deleted: 0,
        error: None,
        objects,
    };
    store.finish_run(&succeeded, &outcome).await.unwrap();

    let failed = store
        .start_run("c1", RunKind::Incremental, "api", t(20))
        .await
        .unwrap();
    let failure = RunOutcome {
        status: RunStatus::Failed,
        finished_at: t(25),
        error: Some("work-orders: the source answered 500".to_owned()),
        objects: BTreeMap::new(),
        ..outcome.clone()
    };
    store.finish_run(&failed, &failure).await.unwrap();

    let cancelled = store
        .start_run("c1", RunKind::Incremental, "schedule", t(30))
        .await
        .unwrap();
    let cancel = RunOutcome {
        status: RunStatus::Cancelled,
        ..failure.clone()
    };
    store.finish_run(&cancelled, &cancel).await.unwrap();

    let abandoned = store
        .start_run("c1", RunKind::Incremental, "schedule", t(40))
        .await
        .unwrap();
    store.abandon_runs("c1", "worker died").await.unwrap();

    let run_events: Vec<StoredEvent> = events(store)
        .await
        .into_iter()
        .filter(|event| event.event_type != EventType::ConnectionCreated)
        .collect();
    assert_eq!(
        types(&run_events),
        [
            EventType::SyncCompleted,
            EventType::SyncFailed,
            EventType::SyncFailed
        ],
        "a cancelled run announces nothing"
    );
    let completed = &run_events[0].payload["data"];
    assert_eq!(completed["run_id"], succeeded.as_str());
    assert_eq!(completed["kind"], "initial");
    assert_eq!(completed["trigger"], "connect");
    assert_eq!(completed["status"], "succeeded");
    assert_eq!(completed["customer_id"], "customer");
    assert_eq!(completed["started_at"], "2024-01-01T00:00:10Z");
    assert_eq!(completed["finished_at"], "2024-01-01T00:00:15Z");
    assert_eq!(
        completed["objects"]["assets"],
        json!({"read": 5, "created": 4, "updated": 1, "unchanged": 0, "deleted": 0})
    );
    assert_eq!(completed["records"]["created"], 4);
    assert_eq!(completed["error"], json!(null));

    let failed_data = &run_events[1].payload["data"];
    assert_eq!(failed_data["run_id"], failed.as_str());
    assert_eq!(failed_data["kind"], "incremental");
    assert_eq!(failed_data["error"], "work-orders: the source answered 500");
    let abandoned_data = &run_events[2].payload["data"];
    assert_eq!(abandoned_data["run_id"], abandoned.as_str());
    assert_eq!(abandoned_data["error"], "worker died");
    assert_eq!(abandoned_data["status"], "failed");

    assert_eq!(store.webhook_deliveries("runs", 10).await.unwrap().len(), 3);
}

pub async fn deliveries_are_claimed_retried_and_logged(ctx: Ctx) {
    let store = &ctx.store;
    endpoint(store, "e1", None).await;
    create(store, "c1").await;

    let claimed = store
        .claim_webhook_deliveries("w1", t(1), t(61), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let due = &claimed[0];
    assert_eq!(due.attempt, 1);
    assert_eq!(due.endpoint_id, "e1");
    assert_eq!(due.url, "https://example.test/e1");
    assert_eq!(due.sealed_secret, b"sealed-e1");
    assert_eq!(due.event.event_type, EventType::ConnectionCreated);
    assert_eq!(due.event.payload["data"]["connection_id"], "c1");
    assert!(
        store
            .claim_webhook_deliveries("w2", t(2), t(62), 10)
            .await
            .unwrap()
            .is_empty(),
        "a leased delivery is not claimed again"
    );

    store
        .record_webhook_attempt(&due.delivery_id, "w1", 1, &failure(2, 500), Some(t(7)), 5)
        .await
        .unwrap();
    let pending = store
        .webhook_delivery(&due.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.status, DeliveryStatus::Pending);
    assert_eq!(pending.next_attempt_at, Some(t(7)));
    assert_eq!(pending.attempts.len(), 1);
    assert_eq!(pending.attempts[0].status_code, Some(500));
    assert_eq!(pending.attempts[0].latency_ms, 12);
    assert!(!pending.attempts[0].succeeded);
    assert!(
        store
            .claim_webhook_deliveries("w2", t(6), t(66), 10)
            .await
            .unwrap()
            .is_empty(),
        "not due before its retry time"
    );

    let again = store
        .claim_webhook_deliveries("w2", t(7), t(67), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
    assert_eq!(
        again[0].event.id, due.event.id,
        "the same event, so the same webhook-id"
    );
    store
        .record_webhook_attempt(&due.delivery_id, "w2", 2, &success(8), None, 5)
        .await
        .unwrap();

    let delivered = store
        .webhook_delivery(&due.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivered.status, DeliveryStatus::Succeeded);
    assert_eq!(delivered.delivered_at, Some(t(8)));
    assert_eq!(delivered.next_attempt_at, None);
    let attempts: Vec<(u32, Option<u16>, bool)> = delivered
        .attempts
        .iter()
        .map(|attempt| (attempt.attempt, attempt.status_code, attempt.succeeded))
        .collect();
    assert_eq!(attempts, [(1, Some(500), false), (2, Some(204), true)]);
    assert_eq!(delivered.attempts[1].attempted_at, t(8));
    assert!(store
        .claim_webhook_deliveries("w3", t(100), t(160), 10)
        .await
        .unwrap()
        .is_empty());

    // A manual retry queues it at once, whatever its status; the attempt count goes on.
    let retried = store
        .retry_webhook_delivery(&due.delivery_id, t(200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retried.status, DeliveryStatus::Pending);
    assert_eq!(retried.next_attempt_at, Some(t(200)));
    let claimed = store
        .claim_webhook_deliveries("w3", t(200), t(260), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, 3);
    assert_eq!(
        store
            .retry_webhook_delivery("dlv_nope", t(1))
            .await
            .unwrap(),
        None
    );

    // A worker whose lease was taken over still logs its attempt, but leaves the delivery to
    // the new holder.
    let taken_over = store
        .claim_webhook_deliveries("w4", t(300), t(360), 10)
        .await
        .unwrap();
    assert_eq!(taken_over.len(), 1, "w3's lease ran out");
    store
        .record_webhook_attempt(&due.delivery_id, "w3", 3, &failure(301, 502), None, 5)
        .await
        .unwrap();
    let still = store
        .webhook_delivery(&due.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.status, DeliveryStatus::Pending);
    assert_eq!(still.attempts.len(), 3);
}

pub async fn endpoints_are_marked_failing_and_cleared(ctx: Ctx) {
    let store = &ctx.store;
    endpoint(store, "e1", None).await;
    for id in ["c1", "c2", "c3"] {
        create(store, id).await;
    }
    let claimed = store
        .claim_webhook_deliveries("w1", t(1), t(61), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    let [first, second, third] = [&claimed[0], &claimed[1], &claimed[2]];

    store
        .record_webhook_attempt(
            &first.delivery_id,
            "w1",
            1,
            &failure(2, 500),
            Some(t(10)),
            2,
        )
        .await
        .unwrap();
    let endpoint_now = store.webhook_endpoint("e1").await.unwrap().unwrap();
    assert_eq!(
        (endpoint_now.status, endpoint_now.consecutive_failures),
        (EndpointStatus::Active, 1)
    );
    store
        .record_webhook_attempt(
            &second.delivery_id,
            "w1",
            1,
            &failure(3, 503),
            Some(t(10)),
            2,
        )
        .await
        .unwrap();
    let failing = store.webhook_endpoint("e1").await.unwrap().unwrap();
    assert_eq!(
        (failing.status, failing.consecutive_failures),
        (EndpointStatus::Failing, 2),
        "two failures in a row reach the threshold"
    );
    assert_eq!(failing.failing_since, Some(t(3)));

    store
        .record_webhook_attempt(&third.delivery_id, "w1", 1, &success(4), None, 2)
        .await
        .unwrap();
    let cleared = store.webhook_endpoint("e1").await.unwrap().unwrap();
    assert_eq!(
        (
            cleared.status,
            cleared.consecutive_failures,
            cleared.failing_since
        ),
        (EndpointStatus::Active, 0, None),
        "a success clears the mark"
    );

    // A delivery whose schedule is exhausted marks its endpoint at once.
    let retried = store
        .claim_webhook_deliveries("w1", t(10), t(70), 10)
        .await
        .unwrap();
    assert_eq!(retried.len(), 2);
    store
        .record_webhook_attempt(
            &retried[0].delivery_id,
            "w1",
            2,
            &failure(11, 500),
            None,
            100,
        )
        .await
        .unwrap();
    let exhausted = store
        .webhook_delivery(&retried[0].delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exhausted.status, DeliveryStatus::Failed);
    assert_eq!(exhausted.next_attempt_at, None);
    let marked = store.webhook_endpoint("e1").await.unwrap().unwrap();
    assert_eq!(
        (marked.status, marked.consecutive_failures),
        (EndpointStatus::Failing, 1)
    );
}

pub async fn concurrent_claimers_never_share_a_delivery(ctx: Ctx) {
    for id in ["e1", "e2", "e3"] {
        endpoint(&ctx.store, id, None).await;
    }
    for i in 0..10 {
        create(&ctx.store, &format!("c{i}")).await;
    }
    let claimers = (0..6).map(|worker| {
        let store = ctx.store.clone();
        tokio::spawn(async move {
            let worker = format!("w{worker}");
            let mut claimed = Vec::new();
            loop {
                let batch = store
                    .claim_webhook_deliveries(&worker, t(10), t(100), 2)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return claimed;
                }
                claimed.extend(batch.into_iter().map(|due| due.delivery_id));
            }
        })
    });
    let mut all = Vec::new();
    for claimer in claimers.collect::<Vec<_>>() {
        all.extend(claimer.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 30, "every delivery is claimed once: {all:?}");
    assert_eq!(unique.len(), 30);
}

pub async fn deleting_an_endpoint_drops_its_deliveries(ctx: Ctx) {
    let store = &ctx.store;
    endpoint(store, "e1", None).await;
    endpoint(store, "e2", None).await;
    create(store, "c1").await;
    let claimed = store
        .claim_webhook_deliveries("w1", t(1), t(61), 10)
        .await
        .unwrap();
    let to_e1 = claimed.iter().find(|due| due.endpoint_id == "e1").unwrap();
    store
        .record_webhook_attempt(&to_e1.delivery_id, "w1", 1, &failure(2, 500), Some(t(5)), 5)
        .await
        .unwrap();

    assert!(store.delete_webhook_endpoint("e1").await.unwrap());
    assert!(!store.delete_webhook_endpoint("e1").await.unwrap());
    assert_eq!(store.webhook_endpoint("e1").await.unwrap(), None);
    assert_eq!(
        store.webhook_delivery(&to_e1.delivery_id).await.unwrap(),
        None
    );
    assert!(store
        .claim_webhook_deliveries("w2", t(100), t(160), 10)
        .await
        .unwrap()
        .iter()
        .all(|due| due.endpoint_id == "e2"));

    // An attempt that finishes after its endpoint was deleted is dropped quietly.
    store
        .record_webhook_attempt(&to_e1.delivery_id, "w1", 2, &success(6), None, 5)
        .await
        .unwrap();
    assert_eq!(
        events(store).await.len(),
        1,
        "the event stays in the outbox"
    );
    assert_eq!(store.webhook_endpoints().await.unwrap().len(), 1);
}
