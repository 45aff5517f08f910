//! Sync exactness: lookback, incremental reads, shared change times, time zones, resume, and
//! what a polling client sees.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{Duration as ChronoDuration, SubsecRound, Utc};
use millrace_connector::SandboxOptions;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{stream, time, unique_remote_ids, Harness, MaximoSandbox};

/// Formats a time as a where literal the sandbox reads: UTC with an explicit offset.
fn literal(time: chrono::DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// Changes work order `wonum` of the synthetic site in sandbox `index`.
async fn change_order(h: &Harness, index: usize, wonum: &str, title: &str) {
    let path = format!("os/mxapiwodetail/PLANT1/{wonum}");
    h.sandbox_ok(index, Method::PATCH, &path, json!({ "description": title }))
        .await;
}

/// Creates a work order in sandbox `index` and returns its remote id (`siteid/wonum`).
async fn create_order(h: &Harness, index: usize, attrs: Value) -> String {
    let created = h
        .sandbox_ok(index, Method::POST, "os/mxapiwodetail", attrs)
        .await;
    created["_key"].as_str().unwrap().to_owned()
}

fn remote_ids(records: &[Value]) -> HashSet<String> {
    unique_remote_ids(records)
}

pub async fn initial_sync_respects_the_lookback_and_reads_master_data_whole(h: &mut Harness) {
    h.reconfigure(|config| config.page_size = 1000).await;
    let sandbox = h.sandbox(SandboxOptions::default()).await;
    let before = Utc::now();
    let (id, token) = h.connect_synced("customer", sandbox).await;
    let after = Utc::now();
    let window_start = before - ChronoDuration::days(30) - ChronoDuration::seconds(1);
    let window_end = after - ChronoDuration::days(30);

    for (object, structure, key, condition) in [
        (
            "work-orders",
            "mxapiwodetail",
            "siteid,wonum",
            "istask=0 and ",
        ),
        ("work-requests", "mxapisr", "ticketid", ""),
    ] {
        let synced = h.list_all(&token, object).await;
        let synced_ids = remote_ids(&synced);
        assert!(
            synced.len() > 20,
            "{object}: only {} in the lookback",
            synced.len()
        );
        for record in &synced {
            let changed = time(&record["remote_updated_at"]);
            assert!(
                changed >= window_start,
                "{object} {} changed {changed}",
                record["remote_id"]
            );
        }

        let filter = format!("{condition}changedate>=\"{}\"", literal(window_start));
        let select = format!("{key},changedate");
        let held = h
            .sandbox_members(sandbox, structure, &select, Some(&filter))
            .await;
        let mut held_ids = HashSet::new();
        for member in &held {
            let remote_id = key
                .split(',')
                .map(|attr| {
                    member[attr]
                        .as_str()
                        .map_or(member[attr].to_string(), str::to_owned)
                })
                .collect::<Vec<_>>()
                .join("/");
            // Records at the very edge of the window may fall either side of the engine's
            // own clock reading; every other one must have arrived.
            if time(&member["changedate"]) >= window_end {
                assert!(
                    synced_ids.contains(&remote_id),
                    "{object} {remote_id} is missing"
                );
            }
            held_ids.insert(remote_id);
        }
        assert!(
            synced_ids.is_subset(&held_ids),
            "{object}: synced records the source lacks"
        );
        let connection = h.admin_get(&format!("/v1/connections/{id}")).await;
        assert_eq!(
            stream(&connection, object)["record_count"],
            synced.len() as u64
        );
    }

    let (_, stats) = h.sandbox_control(sandbox, Method::GET, "stats", None).await;
    for (object, structure) in [
        ("sites", "mxapisite"),
        ("locations", "mxapilocations"),
        ("assets", "mxapiasset"),
    ] {
        let synced = h.list_all(&token, object).await;
        let total = stats["records"][structure].as_u64().unwrap();
        assert!(total > 10, "{structure}: {total}");
        assert_eq!(
            remote_ids(&synced).len() as u64,
            total,
            "{object} not read whole"
        );
    }
}

pub async fn incremental_reads_only_changes_and_the_overlap_adds_no_false_changes(h: &mut Harness) {
    let sandbox = h.synthetic_sandbox(300).await;
    let (id, token) = h.connect_synced("customer", sandbox).await;
    let (initial, cursor) = h.list_all_from(&token, "work-orders", None).await;
    assert_eq!(remote_ids(&initial).len(), 300);
    let modified: HashMap<String, Value> = initial
        .iter()
        .map(|r| {
            (
                r["remote_id"].as_str().unwrap().to_owned(),
                r["modified_at"].clone(),
            )
        })
        .collect();

    let run = h.sync_and_wait(&id).await;
    assert_eq!(run["kind"], "incremental", "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        (
            run["records_created"].as_u64(),
            run["records_updated"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert!(
        run["records_read"].as_u64().unwrap() < 300,
        "not incremental: {run}"
    );
    let (nothing, cursor) = h.list_all_from(&token, "work-orders", Some(&cursor)).await;
    assert!(
        nothing.is_empty(),
        "unchanged records announced: {nothing:?}"
    );
    for record in h.list_all(&token, "work-orders").await {
        let remote_id = record["remote_id"].as_str().unwrap();
        assert_eq!(
            record["modified_at"], modified[remote_id],
            "{remote_id} touched"
        );
    }

    change_order(h, sandbox, "W0000010", "changed by the contract test").await;
    let created = create_order(h, sandbox, json!({"description": "new", "status": "WAPPR"})).await;
    let run = h.sync_and_wait(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        (
            run["records_created"].as_u64(),
            run["records_updated"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let (changes, _) = h.list_all_from(&token, "work-orders", Some(&cursor)).await;
    let expected = HashSet::from(["PLANT1/W0000010".to_owned(), created]);
    assert_eq!(remote_ids(&changes), expected);
    let changed = changes
        .iter()
        .find(|r| r["remote_id"] == "PLANT1/W0000010")
        .unwrap();
    assert_eq!(changed["title"], "changed by the contract test");
    assert_ne!(changed["modified_at"], modified["PLANT1/W0000010"]);
}

pub async fn many_records_sharing_one_change_time_across_pages_all_arrive(h: &mut Harness) {
    let sandbox = h.synthetic_sandbox(50).await;
    let (id, token) = h.connect_synced("customer", sandbox).await;
    let (_, cursor) = h.list_all_from(&token, "work-orders", None).await;

    let shared = (Utc::now() - ChronoDuration::minutes(1)).trunc_subsecs(0);
    let mut created = HashSet::new();
    for n in 0..250 {
        let attrs = json!({"description": format!("shared {n}"), "changedate": literal(shared)});
        created.insert(create_order(h, sandbox, attrs).await);
    }
    assert_eq!(created.len(), 250);

    let run = h.sync_and_wait(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["kind"], "incremental");
    assert_eq!(
        (
            run["records_created"].as_u64(),
            run["records_updated"].as_u64()
        ),
        (Some(250), Some(0))
    );
    let (arrived, _) = h.list_all_from(&token, "work-orders", Some(&cursor)).await;
    assert_eq!(remote_ids(&arrived), created);
    for record in &arrived {
        assert_eq!(time(&record["remote_updated_at"]), shared);
    }
    assert_eq!(h.list_all(&token, "work-orders").await.len(), 300);
}

pub async fn sandboxes_in_other_time_zones_lose_nothing(h: &mut Harness) {
    for (seed, zone) in [(11, "Pacific/Auckland"), (12, "America/New_York")] {
        let sandbox = h
            .sandbox(SandboxOptions {
                synthetic_work_orders: Some(200),
                time_zone: Some(zone.to_owned()),
                seed,
                ..SandboxOptions::default()
            })
            .await;
        let (id, token) = h.connect_synced(zone, sandbox).await;
        let held = h
            .sandbox_members(sandbox, "mxapiwodetail", "siteid,wonum", None)
            .await;
        assert_eq!(held.len(), 200);
        let synced = h.list_all(&token, "work-orders").await;
        assert_eq!(remote_ids(&synced).len(), 200, "{zone}");
        let (_, cursor) = h.list_all_from(&token, "work-orders", None).await;

        let created = create_order(h, sandbox, json!({"description": zone})).await;
        let run = h.sync_and_wait(&id).await;
        assert_eq!(run["records_created"], 1, "{zone}: {run}");
        let (arrived, _) = h.list_all_from(&token, "work-orders", Some(&cursor)).await;
        assert_eq!(
            remote_ids(&arrived),
            HashSet::from([created.clone()]),
            "{zone}"
        );
        let source = h
            .sandbox_ok(
                sandbox,
                Method::GET,
                &format!("os/mxapiwodetail/{created}"),
                json!({}),
            )
            .await;
        assert_eq!(
            time(&arrived[0]["remote_updated_at"]),
            time(&source["changedate"]),
            "{zone}"
        );
    }
}

pub async fn a_stopped_sync_resumes_from_its_checkpoint_without_loss_or_duplicates(
    h: &mut Harness,
) {
    const TOTAL: u64 = 5_000;
    let sandbox = h.synthetic_sandbox(TOTAL).await;
    let (id, token) = h.connect("customer", h.credentials(sandbox), 30).await;

    let started = Instant::now();
    let read_before_stop = loop {
        let connection = h.admin_get(&format!("/v1/connections/{id}")).await;
        let orders = stream(&connection, "work-orders");
        let pages = orders["progress"]["pages_read"].as_u64().unwrap_or(0);
        if orders["state"] == "running" && pages >= 3 {
            break orders["progress"]["records_read"].as_u64().unwrap();
        }
        assert!(
            orders["state"] != "idle",
            "the sync finished before it could be stopped"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no progress: {connection}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Stop as `millrace serve` does on Ctrl-C, then start a new process on the same data.
    h.restart().await;
    let stored_at_stop = h.admin_list_all(&id, "work-orders").await.len() as u64;
    // A page may repeat the previous page's last change second, so reads can exceed stores.
    assert!(
        stored_at_stop + 100 >= read_before_stop && stored_at_stop < TOTAL,
        "stored {stored_at_stop}, read before the stop {read_before_stop}"
    );

    let resumed = loop {
        let runs = h.runs(&id).await;
        if runs.len() >= 2 {
            break runs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the new process did not resume the stopped sync: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(resumed[1]["status"], "cancelled", "{}", resumed[1]);
    assert_eq!(resumed[0]["trigger"], "resume", "{}", resumed[0]);
    assert_eq!(resumed[0]["kind"], "initial", "{}", resumed[0]);

    let connection = h.wait_idle(&id).await;
    let runs = h.runs(&id).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["status"], "succeeded", "{}", runs[0]);
    let reread = runs[0]["records_read"].as_u64().unwrap();
    assert!(
        reread <= TOTAL - stored_at_stop + 200,
        "the resumed run read {reread} records: it restarted instead of resuming"
    );
    assert_eq!(stream(&connection, "work-orders")["record_count"], TOTAL);

    let synced = h.list_all(&token, "work-orders").await;
    let synced_ids = remote_ids(&synced);
    let held = h
        .sandbox_members(sandbox, "mxapiwodetail", "siteid,wonum", Some("istask=0"))
        .await;
    let held_ids: HashSet<String> = held
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["siteid"].as_str().unwrap(),
                m["wonum"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(held_ids.len() as u64, TOTAL);
    assert_eq!(synced_ids, held_ids);
}

pub async fn a_polling_client_sees_every_change_exactly_once(h: &mut Harness) {
    let sandbox = h.synthetic_sandbox(120).await;
    let (id, token) = h.connect_synced("customer", sandbox).await;
    let (initial, mut cursor) = h.list_all_from(&token, "work-orders", None).await;
    assert_eq!(remote_ids(&initial).len(), 120);

    let mut seen_events = HashSet::new();
    for round in 1..=4u32 {
        let mut expected = HashSet::new();
        // W0000005 changes every round; the others once each.
        for number in [5, 10 * round, 10 * round + 1, 10 * round + 2] {
            let wonum = format!("W{number:07}");
            change_order(h, sandbox, &wonum, &format!("round {round} {wonum}")).await;
            expected.insert(format!("PLANT1/{wonum}"));
        }
        expected.insert(create_order(h, sandbox, json!({"description": round.to_string()})).await);

        let run = h.sync_and_wait(&id).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["records_created"], 1, "round {round}: {run}");
        assert_eq!(run["records_updated"], 4, "round {round}: {run}");

        let (changes, next) = h.list_all_from(&token, "work-orders", Some(&cursor)).await;
        cursor = next;
        assert_eq!(remote_ids(&changes), expected, "round {round}");
        for record in &changes {
            let event = (
                record["remote_id"].to_string(),
                record["modified_at"].to_string(),
            );
            assert!(
                seen_events.insert(event.clone()),
                "change seen twice: {event:?}"
            );
        }
        let (again, _) = h.list_all_from(&token, "work-orders", Some(&cursor)).await;
        assert!(again.is_empty(), "round {round}: repeated {again:?}");
    }
    assert_eq!(seen_events.len(), 4 * 5);
}
