//! Claims, leases, sync requests and the run history.

use std::collections::HashSet;

use millrace_model::{RunKind, RunStatus};
use millrace_store::{ApplyStats, RunOutcome, StoreError};

use crate::{create, t, Ctx};

pub async fn claim_renew_and_release(ctx: Ctx) {
    let store = &ctx.store;
    for id in ["c1", "c2", "c3"] {
        create(store, id).await;
    }

    let mut first = store.claim_due("w1", t(10), t(70), 2).await.unwrap();
    first.sort();
    assert_eq!(first, ["c1", "c2"]);
    assert_eq!(
        store.claim_due("w2", t(10), t(70), 5).await.unwrap(),
        ["c3"]
    );
    assert!(
        store
            .claim_due("w3", t(20), t(80), 5)
            .await
            .unwrap()
            .is_empty(),
        "all leased"
    );

    assert!(store.renew_lease("c1", "w1", t(200)).await.unwrap());
    assert!(
        !store.renew_lease("c1", "w2", t(200)).await.unwrap(),
        "not w2's lease"
    );

    // w1's lease on c2 and w2's on c3 expired at t(70); c1's was renewed.
    let mut expired = store.claim_due("w3", t(100), t(160), 5).await.unwrap();
    expired.sort();
    assert_eq!(expired, ["c2", "c3"]);
    assert!(
        !store.renew_lease("c2", "w1", t(300)).await.unwrap(),
        "the lease was lost"
    );

    // The claims consumed the due times; w3's claim of the expired leases needed none.
    store.release_lease("c2", "w1", Some(t(1))).await.unwrap();
    assert_eq!(
        store.next_sync_at("c2").await.unwrap(),
        None,
        "only the holder releases"
    );
    store
        .release_lease("c2", "w3", Some(t(1000)))
        .await
        .unwrap();
    assert_eq!(store.next_sync_at("c2").await.unwrap(), Some(t(1000)));
    store.release_lease("c3", "w3", None).await.unwrap();
    store
        .release_lease("c1", "w1", Some(t(5000)))
        .await
        .unwrap();
    assert_eq!(store.next_sync_at("c3").await.unwrap(), None);

    assert!(store
        .claim_due("w4", t(999), t(2000), 5)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.claim_due("w4", t(1000), t(2000), 5).await.unwrap(),
        ["c2"],
        "due at"
    );
}

pub async fn a_sync_asked_for_during_a_run_is_not_pushed_back(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;

    assert_eq!(
        store.claim_due("w1", t(10), t(70), 1).await.unwrap(),
        ["c1"]
    );
    store.request_sync("c1", t(20)).await.unwrap();
    store.release_lease("c1", "w1", Some(t(900))).await.unwrap();
    assert_eq!(store.next_sync_at("c1").await.unwrap(), Some(t(20)));

    assert_eq!(
        store.claim_due("w1", t(30), t(90), 1).await.unwrap(),
        ["c1"]
    );
    store.release_lease("c1", "w1", Some(t(900))).await.unwrap();
    assert_eq!(
        store.next_sync_at("c1").await.unwrap(),
        Some(t(900)),
        "without a request the run's own next time stands"
    );
}

pub async fn a_dead_workers_leases_can_be_ended_early(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    assert_eq!(
        store.claim_due("w1", t(10), t(70), 1).await.unwrap(),
        ["c1"]
    );
    assert_eq!(store.lease_owners().await.unwrap(), ["w1"]);
    assert!(store
        .claim_due("w2", t(20), t(80), 1)
        .await
        .unwrap()
        .is_empty());

    assert_eq!(store.expire_leases_of("w1").await.unwrap(), 1);
    assert_eq!(
        store.claim_due("w2", t(20), t(80), 1).await.unwrap(),
        ["c1"],
        "the dead worker's claim is taken over before its lease would have run out"
    );
    assert!(!store.renew_lease("c1", "w1", t(90)).await.unwrap());
}

pub async fn concurrent_claimers_never_share_a_connection(ctx: Ctx) {
    for i in 0..20 {
        create(&ctx.store, &format!("c{i}")).await;
    }
    let claimers = (0..8).map(|worker| {
        let store = ctx.store.clone();
        tokio::spawn(async move {
            let worker = format!("w{worker}");
            let mut claimed = Vec::new();
            loop {
                let batch = store.claim_due(&worker, t(10), t(100), 2).await.unwrap();
                if batch.is_empty() {
                    return claimed;
                }
                claimed.extend(batch);
            }
        })
    });
    let mut all = Vec::new();
    for claimer in claimers.collect::<Vec<_>>() {
        all.extend(claimer.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(
        all.len(),
        20,
        "every due connection is claimed once: {all:?}"
    );
    assert_eq!(unique.len(), 20);
}

pub async fn request_sync_and_inactive_connections(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    create(store, "c2").await;
    let claimed = store.claim_due("w1", t(10), t(100), 5).await.unwrap();
    assert_eq!(claimed.len(), 2);
    store.release_lease("c1", "w1", Some(t(900))).await.unwrap();

    store.request_sync("c1", t(20)).await.unwrap();
    assert_eq!(store.next_sync_at("c1").await.unwrap(), Some(t(20)));
    assert_eq!(
        store.claim_due("w2", t(20), t(100), 5).await.unwrap(),
        ["c1"]
    );

    store.disconnect("c2", t(30)).await.unwrap();
    assert!(
        !store.renew_lease("c2", "w1", t(200)).await.unwrap(),
        "a disconnect ends the run"
    );
    assert_eq!(store.next_sync_at("c2").await.unwrap(), None);
    let refused = store.request_sync("c2", t(40)).await;
    assert!(
        matches!(refused, Err(StoreError::ConnectionInactive(_))),
        "{refused:?}"
    );
    store.release_lease("c2", "w1", Some(t(50))).await.unwrap();
    assert_eq!(
        store.next_sync_at("c2").await.unwrap(),
        None,
        "no schedule after disconnect"
    );
    let claimed = store
        .claim_due("w3", t(10_000), t(20_000), 5)
        .await
        .unwrap();
    assert_eq!(
        claimed,
        ["c1"],
        "the disconnected connection is never claimed"
    );

    let missing = store.request_sync("nope", t(40)).await;
    assert!(
        matches!(missing, Err(StoreError::ConnectionNotFound(_))),
        "{missing:?}"
    );
    let missing = store.next_sync_at("nope").await;
    assert!(
        matches!(missing, Err(StoreError::ConnectionNotFound(_))),
        "{missing:?}"
    );

    store
        .release_lease("c1", "w2", Some(t(5000)))
        .await
        .unwrap();
    store.set_reauth_required("c1", "rejected").await.unwrap();
    assert!(store
        .claim_due("w3", t(10_000), t(20_000), 5)
        .await
        .unwrap()
        .is_empty());
}

pub async fn runs_history(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    create(store, "c2").await;
    let first = store
        .start_run("c1", RunKind::Initial, "connect", t(10))
        .await
        .unwrap();
    let second = store
        .start_run("c1", RunKind::Incremental, "schedule", t(20))
        .await
        .unwrap();
    let third = store
        .start_run("c1", RunKind::Incremental, "api", t(20))
        .await
        .unwrap();
    store
        .start_run("c2", RunKind::Initial, "connect", t(10))
        .await
        .unwrap();

    let outcome = RunOutcome {
        status: RunStatus::Succeeded,
        finished_at: t(15),
        records_read: 12,
        stats: ApplyStats {
            created: 10,
            updated: 1,
            unchanged: 1,
        },
        records_deleted: 2,
        error: None,
        objects: Default::default(),
    };
    store.finish_run(&first, &outcome).await.unwrap();
    store.abandon_runs("c1", "worker died").await.unwrap();

    let runs = store.runs("c1", 10).await.unwrap();
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [third.as_str(), second.as_str(), first.as_str()],
        "newest first"
    );
    let done = &runs[2];
    assert_eq!(
        (done.kind, done.status, done.trigger.as_str()),
        (RunKind::Initial, RunStatus::Succeeded, "connect")
    );
    assert_eq!((done.started_at, done.finished_at), (t(10), Some(t(15))));
    assert_eq!(
        (
            done.records_read,
            done.records_created,
            done.records_updated,
            done.records_unchanged,
            done.records_deleted
        ),
        (12, 10, 1, 1, 2)
    );
    assert_eq!(done.error, None);
    for abandoned in &runs[..2] {
        assert_eq!(abandoned.status, RunStatus::Failed);
        assert_eq!(abandoned.error.as_deref(), Some("worker died"));
        assert!(abandoned.finished_at.is_some());
    }
    assert_eq!(runs[1].trigger, "schedule");

    assert_eq!(store.runs("c1", 1).await.unwrap().len(), 1);
    let c2 = store.runs("c2", 10).await.unwrap();
    assert_eq!(
        (c2.len(), c2[0].status),
        (1, RunStatus::Running),
        "other connections' runs stay"
    );
    let missing = store.start_run("nope", RunKind::Initial, "api", t(1)).await;
    assert!(
        matches!(missing, Err(StoreError::ConnectionNotFound(_))),
        "{missing:?}"
    );
}
