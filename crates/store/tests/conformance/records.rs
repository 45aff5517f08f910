//! Pages of records, checkpoints, reads in change order, tombstones and data deletion.

use millrace_model::{ObjectType, StreamState};
use millrace_store::{RecordFilter, RecordQuery, Store, StoreError, StoredRecord, StreamRow};
use serde_json::json;

use crate::{asset, checkpoint, create, t, Ctx};

const ASSETS: ObjectType = ObjectType::Assets;

async fn all_records(store: &Store, connection_id: &str) -> Vec<StoredRecord> {
    let query = RecordQuery {
        limit: 1000,
        include_deleted: true,
        ..Default::default()
    };
    store
        .list_records(connection_id, ASSETS, &query)
        .await
        .unwrap()
}

async fn assets_stream(store: &Store, connection_id: &str) -> StreamRow {
    let streams = store.streams(connection_id).await.unwrap();
    streams.into_iter().find(|s| s.object == ASSETS).unwrap()
}

fn seqs(records: &[StoredRecord]) -> Vec<(String, i64)> {
    records
        .iter()
        .map(|r| (r.remote_id.clone(), r.seq))
        .collect()
}

pub async fn apply_page_creates_updates_and_skips_unchanged(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;

    let page = ["A1", "A2", "A3"].map(|id| asset("c1", id, "h1", json!({ "name": id })));
    let stats = store
        .apply_page("c1", ASSETS, &page, &checkpoint("r1", 3), t(10))
        .await
        .unwrap();
    assert_eq!((stats.created, stats.updated, stats.unchanged), (3, 0, 0));
    let records = all_records(store, "c1").await;
    assert_eq!(
        seqs(&records),
        [("A1".into(), 1), ("A2".into(), 2), ("A3".into(), 3)],
        "ascending seqs in page order"
    );
    let a1 = &records[0];
    assert_eq!((a1.created_at, a1.modified_at), (t(10), t(10)));
    assert_eq!(
        (a1.remote_created_at, a1.remote_updated_at),
        (Some(t(-100)), Some(t(-50)))
    );
    assert_eq!(a1.fields["name"], json!("A1"));
    assert_eq!(a1.custom_fields["plant"], json!("P1"));
    assert_eq!(a1.remote_data, None, "remote data only when asked for");
    let stream = assets_stream(store, "c1").await;
    assert_eq!(
        (stream.state, stream.record_count),
        (StreamState::Running, 3)
    );

    let page = [
        asset("c1", "A1", "h1", json!({ "name": "A1" })),
        asset("c1", "A2", "h2", json!({ "name": "A2 renamed" })),
        asset("c1", "A4", "h1", json!({ "name": "A4" })),
    ];
    let stats = store
        .apply_page("c1", ASSETS, &page, &checkpoint("r1", 6), t(20))
        .await
        .unwrap();
    assert_eq!((stats.created, stats.updated, stats.unchanged), (1, 1, 1));
    let records = all_records(store, "c1").await;
    assert_eq!(
        seqs(&records),
        [
            ("A1".into(), 1),
            ("A3".into(), 3),
            ("A2".into(), 4),
            ("A4".into(), 5)
        ],
        "only changes take new seqs"
    );
    let a2 = &records[2];
    assert_eq!((a2.created_at, a2.modified_at), (t(10), t(20)));
    assert_eq!(a2.fields["name"], json!("A2 renamed"));
    assert_eq!(
        records[0].modified_at,
        t(10),
        "an unchanged record is untouched"
    );
    assert_eq!(assets_stream(store, "c1").await.record_count, 4);

    let mut tombstone = asset("c1", "A3", "h-deleted", json!({ "name": "A3" }));
    tombstone.remote_deleted_at = Some(t(15));
    let stats = store
        .apply_page("c1", ASSETS, &[tombstone], &checkpoint("r1", 7), t(30))
        .await
        .unwrap();
    assert_eq!(stats.updated, 1);
    assert_eq!(
        assets_stream(store, "c1").await.record_count,
        3,
        "tombstones are not live"
    );

    let unchanged = store
        .apply_page("c1", ASSETS, &page, &checkpoint("r1", 10), t(40))
        .await;
    assert_eq!(unchanged.unwrap().unchanged, 3);
    assert_eq!(
        seqs(&all_records(store, "c1").await).last().unwrap().1,
        6,
        "no seq spent"
    );
}

pub async fn apply_page_splits_large_pages_into_batches(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    let page: Vec<_> = (0..2100)
        .map(|i| asset("c1", &format!("A{i:05}"), "h1", json!({ "n": i })))
        .collect();
    let stats = store
        .apply_page("c1", ASSETS, &page, &checkpoint("r1", 2100), t(10))
        .await;
    assert_eq!(stats.unwrap().created, 2100);
    let query = RecordQuery {
        limit: 5000,
        ..Default::default()
    };
    let records = store.list_records("c1", ASSETS, &query).await.unwrap();
    let expected: Vec<(String, i64)> = (0..2100)
        .map(|i| (format!("A{i:05}"), i64::from(i) + 1))
        .collect();
    assert!(
        seqs(&records) == expected,
        "one seq each, in page order, across batches"
    );
    assert_eq!(assets_stream(store, "c1").await.record_count, 2100);

    let again = store
        .apply_page("c1", ASSETS, &page, &checkpoint("r2", 2100), t(20))
        .await;
    assert_eq!(again.unwrap().unchanged, 2100);
}

pub async fn apply_page_keeps_the_last_duplicate_of_a_page(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    let page = [
        asset("c1", "A1", "h1", json!({ "name": "first" })),
        asset("c1", "A1", "h2", json!({ "name": "second" })),
        asset("c1", "A1", "h2", json!({ "name": "second" })),
    ];
    let stats = store
        .apply_page("c1", ASSETS, &page, &checkpoint("r1", 3), t(10))
        .await
        .unwrap();
    assert_eq!((stats.created, stats.updated, stats.unchanged), (1, 1, 1));
    let records = all_records(store, "c1").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].fields["name"], json!("second"));
    assert_eq!(records[0].seq, 2);
    assert_eq!(assets_stream(store, "c1").await.record_count, 1);
}

pub async fn apply_page_after_disconnect_stores_nothing(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    let first = [asset("c1", "A1", "h1", json!({}))];
    store
        .apply_page("c1", ASSETS, &first, &checkpoint("r1", 1), t(10))
        .await
        .unwrap();
    store.disconnect("c1", t(11)).await.unwrap();

    let second = [asset("c1", "A2", "h1", json!({}))];
    let applied = store
        .apply_page("c1", ASSETS, &second, &checkpoint("r1", 2), t(12))
        .await;
    assert!(
        matches!(applied, Err(StoreError::ConnectionInactive(_))),
        "{applied:?}"
    );
    assert_eq!(all_records(store, "c1").await.len(), 1);
    let stream = assets_stream(store, "c1").await;
    assert_eq!(
        stream.checkpoint,
        Some(checkpoint("r1", 1)),
        "the checkpoint did not move"
    );
    assert_eq!(
        (stream.state, stream.record_count),
        (StreamState::Paused, 1)
    );

    let unknown = store
        .apply_page("nope", ASSETS, &second, &checkpoint("r1", 2), t(12))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::ConnectionNotFound(_))),
        "{unknown:?}"
    );
}

pub async fn checkpoints_round_trip_until_the_stream_completes(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    let page = [asset("c1", "A1", "h1", json!({}))];
    store
        .apply_page("c1", ASSETS, &page, &checkpoint("r1", 1), t(10))
        .await
        .unwrap();

    let stream = assets_stream(store, "c1").await;
    assert_eq!(stream.checkpoint, Some(checkpoint("r1", 1)));
    let connection = store.connection("c1").await.unwrap().unwrap();
    let progress = connection.streams[0].progress.clone().unwrap();
    assert_eq!((progress.run_id.as_str(), progress.records_read), ("r1", 1));
    assert_eq!(progress.records_expected, Some(100));

    store
        .set_stream_state("c1", ASSETS, StreamState::Failed, Some(Some("source down")))
        .await
        .unwrap();
    let stream = assets_stream(store, "c1").await;
    assert_eq!(
        (stream.state, stream.last_error.as_deref()),
        (StreamState::Failed, Some("source down"))
    );
    assert!(
        stream.checkpoint.is_some(),
        "a failed run keeps its checkpoint to resume from"
    );
    store
        .set_stream_state("c1", ASSETS, StreamState::Running, None)
        .await
        .unwrap();
    assert_eq!(
        assets_stream(store, "c1").await.last_error.as_deref(),
        Some("source down")
    );
    store
        .set_stream_state("c1", ASSETS, StreamState::Running, Some(None))
        .await
        .unwrap();
    assert_eq!(assets_stream(store, "c1").await.last_error, None);
    store
        .set_stream_state("c1", ASSETS, StreamState::Failed, Some(Some("again")))
        .await
        .unwrap();

    store
        .complete_stream("c1", ASSETS, Some(t(-50)), t(20))
        .await
        .unwrap();
    let stream = assets_stream(store, "c1").await;
    assert_eq!(stream.state, StreamState::Idle);
    assert_eq!(
        (stream.watermark, stream.last_successful_sync_at),
        (Some(t(-50)), Some(t(20)))
    );
    assert_eq!((stream.checkpoint, stream.last_error), (None, None));
    assert_eq!(stream.record_count, 1);

    store
        .complete_stream("c1", ASSETS, None, t(30))
        .await
        .unwrap();
    let stream = assets_stream(store, "c1").await;
    assert_eq!(
        (stream.watermark, stream.last_successful_sync_at),
        (Some(t(-50)), Some(t(30)))
    );

    store.set_reconciled("c1", ASSETS, t(31)).await.unwrap();
    assert_eq!(
        assets_stream(store, "c1").await.last_reconciled_at,
        Some(t(31))
    );
    let objects: Vec<ObjectType> = store
        .streams("c1")
        .await
        .unwrap()
        .iter()
        .map(|s| s.object)
        .collect();
    assert_eq!(objects, [ObjectType::Assets, ObjectType::WorkOrders]);

    let missing = store
        .set_stream_state("nope", ASSETS, StreamState::Idle, None)
        .await;
    assert!(
        matches!(missing, Err(StoreError::ConnectionNotFound(_))),
        "{missing:?}"
    );
}

pub async fn list_records_pages_in_change_order(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    create(store, "c2").await;
    let page: Vec<_> = (0..10)
        .map(|i| asset("c1", &format!("A{i}"), "h1", json!({})))
        .collect();
    store
        .apply_page("c1", ASSETS, &page, &checkpoint("r1", 10), t(10))
        .await
        .unwrap();
    let other = [asset("c2", "A0", "h1", json!({}))];
    store
        .apply_page("c2", ASSETS, &other, &checkpoint("r2", 1), t(10))
        .await
        .unwrap();
    let changes = [
        asset("c1", "A2", "h2", json!({})),
        asset("c1", "A7", "h2", json!({})),
    ];
    store
        .apply_page("c1", ASSETS, &changes, &checkpoint("r1", 12), t(20))
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut after_seq = 0;
    loop {
        let query = RecordQuery {
            after_seq,
            limit: 3,
            ..Default::default()
        };
        let batch = store.list_records("c1", ASSETS, &query).await.unwrap();
        let Some(last) = batch.last() else { break };
        after_seq = last.seq;
        seen.extend(batch.iter().map(|r| r.remote_id.clone()));
    }
    let expected: Vec<String> = [0, 1, 3, 4, 5, 6, 8, 9, 2, 7]
        .iter()
        .map(|i| format!("A{i}"))
        .collect();
    assert_eq!(
        seen, expected,
        "each record once, in the order of its last change"
    );

    let query = RecordQuery {
        limit: 100,
        modified_after: Some(t(10)),
        ..Default::default()
    };
    let modified = store.list_records("c1", ASSETS, &query).await.unwrap();
    assert_eq!(seqs(&modified), [("A2".into(), 11), ("A7".into(), 12)]);

    let query = RecordQuery {
        limit: 1,
        include_remote_data: true,
        ..Default::default()
    };
    let with_raw = store.list_records("c1", ASSETS, &query).await.unwrap();
    assert_eq!(
        with_raw[0].remote_data,
        Some(json!({ "ASSETNUM": "A0", "hash": "h1" }))
    );

    let id = millrace_model::ids::record_id("c1", ASSETS, "A2");
    let record = store
        .record("c1", ASSETS, &id, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((record.remote_id.as_str(), record.seq), ("A2", 11));
    assert_eq!(
        record.remote_data,
        Some(json!({ "ASSETNUM": "A2", "hash": "h2" }))
    );
    assert_eq!(
        store
            .record("c1", ASSETS, &id, false)
            .await
            .unwrap()
            .unwrap()
            .remote_data,
        None
    );
    assert_eq!(
        store
            .record("c1", ObjectType::WorkOrders, &id, false)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.record("c2", ASSETS, &id, false).await.unwrap(), None);
    assert_eq!(
        all_records(store, "c2").await.len(),
        1,
        "connections do not share records"
    );
}

pub async fn list_records_filters(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    let page = [
        asset(
            "c1",
            "A1",
            "h",
            json!({ "status": "open", "site": { "id": "S1" }, "critical": true, "priority": 2 }),
        ),
        asset(
            "c1",
            "A2",
            "h",
            json!({ "status": "open", "site": { "id": "S2" }, "critical": false, "priority": 3 }),
        ),
        asset(
            "c1",
            "A3",
            "h",
            json!({ "status": "closed", "site": { "id": "S1" }, "critical": null }),
        ),
    ];
    store
        .apply_page("c1", ASSETS, &page, &checkpoint("r1", 3), t(10))
        .await
        .unwrap();

    let matching = |filters: Vec<(Vec<&'static str>, &str)>| {
        let filters = filters
            .into_iter()
            .map(|(path, value)| RecordFilter {
                path,
                value: value.to_owned(),
            })
            .collect();
        let query = RecordQuery {
            limit: 100,
            filters,
            ..Default::default()
        };
        async move {
            let records = store.list_records("c1", ASSETS, &query).await.unwrap();
            records.into_iter().map(|r| r.remote_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(matching(vec![(vec!["status"], "open")]).await, ["A1", "A2"]);
    assert_eq!(
        matching(vec![(vec!["site", "id"], "S1")]).await,
        ["A1", "A3"]
    );
    assert_eq!(
        matching(vec![(vec!["status"], "open"), (vec!["site", "id"], "S1")]).await,
        ["A1"]
    );
    assert_eq!(matching(vec![(vec!["critical"], "true")]).await, ["A1"]);
    assert_eq!(matching(vec![(vec!["critical"], "false")]).await, ["A2"]);
    assert_eq!(matching(vec![(vec!["priority"], "3")]).await, ["A2"]);
    assert!(matching(vec![(vec!["missing"], "open")]).await.is_empty());
    assert!(matching(vec![(vec!["status"], "open' OR '1'='1")])
        .await
        .is_empty());

    store
        .mark_remote_deleted("c1", ASSETS, &["A1".to_owned()], t(20))
        .await
        .unwrap();
    assert_eq!(
        matching(vec![(vec!["status"], "open")]).await,
        ["A2"],
        "deleted ones are hidden"
    );
    let query = RecordQuery {
        limit: 100,
        include_deleted: true,
        filters: vec![RecordFilter {
            path: vec!["status"],
            value: "open".into(),
        }],
        ..Default::default()
    };
    let all = store.list_records("c1", ASSETS, &query).await.unwrap();
    assert_eq!(seqs(&all), [("A2".into(), 2), ("A1".into(), 4)]);
    assert_eq!(all[1].remote_deleted_at, Some(t(20)));
}

pub async fn mark_remote_deleted_takes_new_seqs(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    let page = ["A1", "A2", "A3"].map(|id| asset("c1", id, "h1", json!({})));
    store
        .apply_page("c1", ASSETS, &page, &checkpoint("r1", 3), t(10))
        .await
        .unwrap();

    let gone = ["A3", "A1", "A1", "unknown"].map(String::from);
    assert_eq!(
        store
            .mark_remote_deleted("c1", ASSETS, &gone, t(20))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .mark_remote_deleted("c1", ASSETS, &gone, t(30))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .live_remote_ids("c1", ASSETS, None, 100)
            .await
            .unwrap(),
        ["A2"]
    );
    assert_eq!(assets_stream(store, "c1").await.record_count, 1);

    let records = all_records(store, "c1").await;
    assert_eq!(
        seqs(&records),
        [("A2".into(), 2), ("A3".into(), 4), ("A1".into(), 5)]
    );
    assert_eq!(
        (records[1].remote_deleted_at, records[1].modified_at),
        (Some(t(20)), t(20))
    );
    let live = RecordQuery {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        store.list_records("c1", ASSETS, &live).await.unwrap().len(),
        1
    );

    // Reappearing with the very content it had before still counts as a change.
    let back = [asset("c1", "A1", "h1", json!({}))];
    let stats = store
        .apply_page("c1", ASSETS, &back, &checkpoint("r2", 1), t(40))
        .await
        .unwrap();
    assert_eq!(stats.updated, 1);
    let a1 = store.list_records("c1", ASSETS, &live).await.unwrap();
    assert_eq!(seqs(&a1), [("A2".into(), 2), ("A1".into(), 6)]);
    assert_eq!(a1[1].remote_deleted_at, None);
    assert_eq!(assets_stream(store, "c1").await.record_count, 2);

    store.disconnect("c1", t(50)).await.unwrap();
    let refused = store
        .mark_remote_deleted("c1", ASSETS, &["A2".to_owned()], t(60))
        .await;
    assert!(
        matches!(refused, Err(StoreError::ConnectionInactive(_))),
        "{refused:?}"
    );
    assert_eq!(
        store
            .live_remote_ids("c1", ASSETS, None, 100)
            .await
            .unwrap(),
        ["A1", "A2"]
    );
    assert_eq!(
        store.live_remote_ids("c1", ASSETS, None, 1).await.unwrap(),
        ["A1"]
    );
    assert_eq!(
        store
            .live_remote_ids("c1", ASSETS, Some("A1"), 1)
            .await
            .unwrap(),
        ["A2"],
        "a walk continues after the last id it saw"
    );
    assert!(store
        .live_remote_ids("c1", ASSETS, Some("A2"), 1)
        .await
        .unwrap()
        .is_empty());
}

pub async fn delete_data_empties_and_bumps_the_epoch(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    create(store, "c2").await;
    let page = ["A1", "A2"].map(|id| asset("c1", id, "h1", json!({})));
    store
        .apply_page("c1", ASSETS, &page, &checkpoint("r1", 2), t(10))
        .await
        .unwrap();
    store
        .complete_stream("c1", ASSETS, Some(t(5)), t(11))
        .await
        .unwrap();
    let other = [asset("c2", "A1", "h1", json!({}))];
    store
        .apply_page("c2", ASSETS, &other, &checkpoint("r2", 1), t(10))
        .await
        .unwrap();

    assert_eq!(store.delete_data("c1").await.unwrap(), 2);
    assert_eq!(store.data_epoch("c1").await.unwrap(), 1);
    assert!(all_records(store, "c1").await.is_empty());
    let stream = assets_stream(store, "c1").await;
    assert_eq!(
        (stream.state, stream.record_count),
        (StreamState::Pending, 0)
    );
    assert_eq!(
        (
            stream.watermark,
            stream.last_successful_sync_at,
            stream.checkpoint
        ),
        (None, None, None)
    );
    assert_eq!(
        all_records(store, "c2").await.len(),
        1,
        "other connections keep their data"
    );
    assert_eq!(store.data_epoch("c2").await.unwrap(), 0);

    store
        .apply_page("c1", ASSETS, &page, &checkpoint("r3", 2), t(20))
        .await
        .unwrap();
    let records = all_records(store, "c1").await;
    assert_eq!(
        seqs(&records),
        [("A1".into(), 3), ("A2".into(), 4)],
        "seqs never go back"
    );
    assert_eq!(records[0].created_at, t(20));

    store.disconnect("c1", t(30)).await.unwrap();
    assert_eq!(store.delete_data("c1").await.unwrap(), 2);
    assert_eq!(store.data_epoch("c1").await.unwrap(), 2);
    assert_eq!(assets_stream(store, "c1").await.state, StreamState::Paused);
    let missing = store.delete_data("nope").await;
    assert!(
        matches!(missing, Err(StoreError::ConnectionNotFound(_))),
        "{missing:?}"
    );
}

pub async fn list_records_text_holds_the_same_records_unparsed(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    let page = [
        asset(
            "c1",
            "A1",
            "h1",
            json!({"name": "Pump \"7\"", "tags": ["a", "b"]}),
        ),
        asset("c1", "A2", "h1", json!({})),
    ];
    store
        .apply_page("c1", ASSETS, &page, &checkpoint("r1", 2), t(10))
        .await
        .unwrap();

    for include_remote_data in [false, true] {
        let query = RecordQuery {
            limit: 10,
            include_remote_data,
            ..RecordQuery::default()
        };
        let parsed = store.list_records("c1", ASSETS, &query).await.unwrap();
        let text = store.list_records_text("c1", ASSETS, &query).await.unwrap();
        assert_eq!(parsed.len(), text.len());
        for (parsed, text) in parsed.iter().zip(&text) {
            assert_eq!((&parsed.id, parsed.seq), (&text.id, text.seq));
            assert_eq!(parsed.modified_at, text.modified_at);
            let fields: serde_json::Value = serde_json::from_str(&text.fields).unwrap();
            assert_eq!(fields, serde_json::Value::Object(parsed.fields.clone()));
            let custom: serde_json::Value = serde_json::from_str(&text.custom_fields).unwrap();
            assert_eq!(
                custom,
                serde_json::Value::Object(parsed.custom_fields.clone())
            );
            let raw = text
                .remote_data
                .as_deref()
                .map(|raw| serde_json::from_str(raw).unwrap());
            assert_eq!(raw, parsed.remote_data);
        }
    }
}
