//! The TrackWise Digital connector against its sandbox over real HTTP: the seeded org synced
//! end to end, refused credentials, keyset paging through ties and expired locators, the
//! delete log, API limits, a per-installation mapping, and the SOQL literal rules.

use std::collections::{BTreeSet, HashSet};

use chrono::{Duration as ChronoDuration, Utc};
use millrace_compliance::world::{Backend, World};
use millrace_connector::{Credentials, PageRequest, RunningSandbox, SandboxOptions, Source};
use millrace_model::ObjectType;
use millrace_trackwise::sandbox::{CLIENT_ID, CLIENT_SECRET};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const DEVIATIONS: &str = "CMPL123QMS__Deviation__c";
const TITLE: &str = "CMPL123QMS__Short_Description__c";

fn registry() -> millrace_connector::Registry {
    let mut registry = millrace_connector::Registry::new();
    registry.register(millrace_trackwise::connector());
    registry
}

async fn empty_sandbox() -> RunningSandbox {
    millrace_trackwise::sandbox::start(SandboxOptions {
        empty: true,
        ..SandboxOptions::default()
    })
    .await
    .unwrap()
}

fn open(credentials: Value) -> Box<dyn Source> {
    let credentials: Credentials = serde_json::from_value(credentials).unwrap();
    millrace_trackwise::connector().open(&credentials).unwrap()
}

async fn control(sandbox: &RunningSandbox, method: Method, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .request(method, format!("{}/_sandbox/{path}", sandbox.base_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

async fn create(sandbox: &RunningSandbox, object: &str, body: Value) -> String {
    control(sandbox, Method::POST, &format!("records/{object}"), body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Reads a whole listing of `object` page by page; `between` runs after each page.
async fn read_all(
    source: &dyn Source,
    object: ObjectType,
    since: Option<chrono::DateTime<Utc>>,
    page_size: u32,
    mut between: impl FnMut(usize),
) -> Vec<millrace_connector::SourceRecord> {
    let mut records = Vec::new();
    let mut page = None;
    for n in 0.. {
        let answer = source
            .read_page(&PageRequest {
                connection_id: "test".into(),
                object,
                since,
                page,
                page_size,
            })
            .await
            .unwrap();
        assert!(answer.rejected.is_empty(), "{:?}", answer.rejected);
        records.extend(answer.records);
        between(n);
        match answer.next_page {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeded_org_syncs_sites_and_every_kind_of_quality_event() {
    let mut world = World::start(Backend::Sqlite, registry(), millrace_trackwise::SYSTEM_ID).await;
    let index = world.sandbox(SandboxOptions::default()).await;
    let (id, _token) = world.connect_synced("plant-quality", index).await;

    let sites = world.admin_list_all(&id, "sites").await;
    assert_eq!(sites.len(), 3);
    assert!(sites.iter().all(|site| site["status"] == "active"));
    let events = world.admin_list_all(&id, "quality-events").await;
    let kinds: BTreeSet<&str> = events
        .iter()
        .filter_map(|event| event["event_type"].as_str())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "audit",
            "capa",
            "change_control",
            "complaint",
            "deviation",
            "nonconformance"
        ])
    );
    // The lookback (30 days) keeps older records out of the initial sync.
    let cutoff = Utc::now() - ChronoDuration::days(31);
    for event in &events {
        let changed: chrono::DateTime<Utc> = event["remote_updated_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(changed > cutoff, "{event}");
        assert!(
            event["title"]
                .as_str()
                .is_some_and(|title| !title.is_empty()),
            "{event}"
        );
        let site = event["site"]["remote_id"].as_str().unwrap();
        assert!(
            sites.iter().any(|known| known["remote_id"] == site),
            "{event}"
        );
    }
    assert!(events.len() > 50, "only {} events", events.len());
    assert!(
        events.len() < 480,
        "the lookback was not applied: {}",
        events.len()
    );

    let systems = world.admin_get("/v1/systems").await;
    let entry = systems["data"]
        .as_array()
        .or_else(|| systems.as_array())
        .unwrap()
        .iter()
        .find(|system| system["id"] == millrace_trackwise::SYSTEM_ID)
        .unwrap()
        .clone();
    assert_eq!(entry["category"], "qms");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused_at_connect_and_create_nothing() {
    let mut world = World::start(Backend::Sqlite, registry(), millrace_trackwise::SYSTEM_ID).await;
    let index = world
        .sandbox(SandboxOptions {
            empty: true,
            ..SandboxOptions::default()
        })
        .await;
    let url = world.sandbox_url(index).to_owned();
    let wrong = [
        json!({"instance_url": url, "client_id": CLIENT_ID, "client_secret": "guessed"}),
        json!({"instance_url": url, "client_id": "someone-else", "client_secret": CLIENT_SECRET}),
        json!({"instance_url": url, "client_id": CLIENT_ID, "refresh_token": "revoked-long-ago"}),
    ];
    for credentials in wrong {
        let reply = world
            .admin(
                Method::POST,
                "/v1/connections",
                Some(json!({
                    "customer_id": "plant-quality",
                    "system": millrace_trackwise::SYSTEM_ID,
                    "deployment": "cloud",
                    "credentials": credentials,
                })),
            )
            .await;
        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "credentials_rejected");
        let detail = reply.body["detail"].as_str().unwrap_or_default().to_owned();
        assert!(
            detail.contains("invalid_client") || detail.contains("invalid_grant"),
            "the source's reason is shown: {detail}"
        );
    }
    let connections = world.admin_get("/v1/connections").await;
    assert_eq!(connections["data"], json!([]), "{connections}");
    let credits = world.admin_get("/v1/credits").await;
    assert_eq!(credits["used"], 0, "{credits}");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_that_does_not_fit_the_org_is_refused_at_connect() {
    let mut world = World::start(Backend::Sqlite, registry(), millrace_trackwise::SYSTEM_ID).await;
    let index = world
        .sandbox(SandboxOptions {
            empty: true,
            ..SandboxOptions::default()
        })
        .await;
    let mut credentials = world.credentials(index);
    credentials["mapping"] = json!({"quality_events": [
        {"event_type": "deviation", "object": "OTHERNS__Deviation__c"}
    ]});
    let reply = world
        .admin(
            Method::POST,
            "/v1/connections",
            Some(json!({
                "customer_id": "plant-quality",
                "system": millrace_trackwise::SYSTEM_ID,
                "deployment": "cloud",
                "credentials": credentials,
            })),
        )
        .await;
    assert!(!reply.status.is_success(), "{}", reply.body);
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("OTHERNS__Deviation__c"), "{}", reply.body);
    assert!(detail.contains("INVALID_TYPE"), "{}", reply.body);
    assert_eq!(world.admin_get("/v1/connections").await["data"], json!([]));
    world.finish().await;
}

#[tokio::test]
async fn ties_across_pages_and_expired_locators_lose_nothing() {
    let sandbox = empty_sandbox().await;
    let shared = (Utc::now() - ChronoDuration::hours(1)).to_rfc3339();
    let mut ids = HashSet::new();
    for n in 0..23 {
        ids.insert(
            create(
                &sandbox,
                DEVIATIONS,
                json!({TITLE: format!("tied {n}"), "SystemModstamp": shared}),
            )
            .await,
        );
    }
    let source = open(sandbox.credentials.clone());

    // Straight through, by nextRecordsUrl.
    let records = read_all(source.as_ref(), ObjectType::QualityEvents, None, 4, |_| {}).await;
    let read: Vec<&str> = records
        .iter()
        .map(|record| record.remote_id.as_str())
        .collect();
    assert_eq!(read.len(), 23, "{read:?}");
    assert_eq!(
        read.iter().copied().collect::<HashSet<_>>(),
        ids.iter().map(String::as_str).collect()
    );

    // The locator expires after the second page: the read goes on by keyset on
    // (SystemModstamp, Id) and still sees every tied record exactly once.
    let base = sandbox.base_url.clone();
    let expire = move || {
        let base = base.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{base}/_sandbox/faults"))
                .json(&json!({"expire_locators": true}))
                .send()
                .await
                .unwrap();
        })
    };
    let mut pending = Vec::new();
    let since = Some(Utc::now() - ChronoDuration::days(1));
    let mut page = None;
    let mut seen = Vec::new();
    for n in 0.. {
        let answer = source
            .read_page(&PageRequest {
                connection_id: "test".into(),
                object: ObjectType::QualityEvents,
                since,
                page,
                page_size: 4,
            })
            .await
            .unwrap();
        seen.extend(answer.records.into_iter().map(|record| record.remote_id));
        if n == 1 {
            pending.push(expire());
            for task in pending.drain(..) {
                task.await.unwrap();
            }
        }
        match answer.next_page {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 23, "a tie was skipped or doubled: {seen:?}");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), ids);
    sandbox.shutdown.cancel();
}

#[tokio::test]
async fn deletions_carry_their_content_and_purged_ones_are_left_to_reconciliation() {
    let sandbox = empty_sandbox().await;
    let kept = create(&sandbox, DEVIATIONS, json!({TITLE: "kept"})).await;
    let purged = create(&sandbox, DEVIATIONS, json!({TITLE: "purged"})).await;
    let binned = create(&sandbox, DEVIATIONS, json!({TITLE: "bucket tooth missing"})).await;
    let source = open(sandbox.credentials.clone());
    let since = Some(Utc::now() - ChronoDuration::hours(1));

    // `purged` is deleted and the recycle bin emptied; `binned` is deleted after, so it is
    // still in the bin. Both are in the delete log.
    let delete = |id: String| {
        let path = format!("records/{DEVIATIONS}/{id}");
        let sandbox = &sandbox;
        async move { control(sandbox, Method::DELETE, &path, json!(null)).await }
    };
    delete(purged.clone()).await;
    control(&sandbox, Method::POST, "recycle_bin/empty", json!({})).await;
    delete(binned.clone()).await;

    let records = read_all(
        source.as_ref(),
        ObjectType::QualityEvents,
        since,
        50,
        |_| {},
    )
    .await;
    let tombstone = records
        .iter()
        .find(|record| record.remote_id == binned)
        .expect("the binned record arrives as a tombstone");
    assert!(tombstone.remote_deleted_at.is_some());
    assert_eq!(
        tombstone.fields["title"], "bucket tooth missing",
        "its content is kept"
    );
    assert!(records
        .iter()
        .any(|record| record.remote_id == kept && record.remote_deleted_at.is_none()));
    assert!(
        !records.iter().any(|record| record.remote_id == purged),
        "purged records cannot be read; they must not come back as empty records"
    );

    // Reconciliation lists the live ids: the purged ones are absent, so they get marked.
    let mut ids = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let answer = source
            .list_ids(ObjectType::QualityEvents, page.as_deref())
            .await
            .unwrap();
        ids.extend(answer.remote_ids);
        match answer.next_page {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    assert_eq!(ids, vec![kept]);
    sandbox.shutdown.cancel();
}

#[tokio::test]
async fn the_api_usage_share_and_the_daily_limit_are_respected() {
    let sandbox = empty_sandbox().await;
    create(&sandbox, DEVIATIONS, json!({TITLE: "first"})).await;
    let mut credentials = sandbox.credentials.clone();
    credentials["api_usage_percent"] = json!(90);
    let source = open(credentials);
    let request = PageRequest {
        connection_id: "test".into(),
        object: ObjectType::QualityEvents,
        since: None,
        page: None,
        page_size: 10,
    };
    control(
        &sandbox,
        Method::POST,
        "limits",
        json!({"used": 94, "max": 100}),
    )
    .await;
    source.read_page(&request).await.unwrap();
    let before = control(&sandbox, Method::GET, "stats", json!(null)).await["api_requests"].clone();
    let err = source.read_page(&request).await.unwrap_err().to_string();
    assert!(err.contains("95 of its 100 daily API requests"), "{err}");
    let after = control(&sandbox, Method::GET, "stats", json!(null)).await["api_requests"].clone();
    assert_eq!(before, after, "no request is sent over the share");

    control(
        &sandbox,
        Method::POST,
        "limits",
        json!({"used": 100, "max": 100}),
    )
    .await;
    let fresh = open(sandbox.credentials.clone());
    let err = fresh.read_page(&request).await.unwrap_err().to_string();
    assert!(err.contains("REQUEST_LIMIT_EXCEEDED"), "{err}");
    assert!(err.contains("daily API request limit"), "{err}");
    sandbox.shutdown.cancel();
}

#[tokio::test]
async fn an_installations_own_names_are_read_through_its_mapping() {
    let sandbox = empty_sandbox().await;
    control(
        &sandbox,
        Method::POST,
        "objects",
        json!({"name": "TWD__NC_Record__c", "prefix": "a7N", "fields": {
            "TWD__Subject__c": "text", "TWD__Stage__c": "text", "TWD__Lot__c": "text",
            "TWD__Raised_On__c": "date_time"
        }}),
    )
    .await;
    let id = create(
        &sandbox,
        "TWD__NC_Record__c",
        json!({"Name": "NC-2024-0042", "TWD__Subject__c": "Weld porosity on boom", "TWD__Stage__c": "Closed",
               "TWD__Lot__c": "LOT-778", "TWD__Raised_On__c": "2024-05-02T06:30:00.000+0000"}),
    )
    .await;
    let mut credentials = sandbox.credentials.clone();
    credentials["mapping"] = json!(json!({"quality_events": [{
        "event_type": "nonconformance",
        "object": "TWD__NC_Record__c",
        "fields": {"number": "Name", "title": "TWD__Subject__c", "status": "TWD__Stage__c",
                   "opened_at": "TWD__Raised_On__c"},
        "extra_fields": ["TWD__Lot__c"]
    }]})
    .to_string());
    let source = open(credentials);
    source.check().await.unwrap();
    let records = read_all(source.as_ref(), ObjectType::QualityEvents, None, 10, |_| {}).await;
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.remote_id, id);
    assert_eq!(record.fields["event_type"], "nonconformance");
    assert_eq!(record.fields["number"], "NC-2024-0042");
    assert_eq!(record.fields["title"], "Weld porosity on boom");
    assert_eq!(record.fields["status"], "closed");
    assert_eq!(record.fields["opened_at"], "2024-05-02T06:30:00Z");
    assert_eq!(record.custom_fields["TWD__Lot__c"], "LOT-778");
    sandbox.shutdown.cancel();
}

#[tokio::test]
async fn soql_datetime_literals_follow_salesforce_rules() {
    let sandbox = empty_sandbox().await;
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/services/oauth2/token", sandbox.base_url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap();
    let ask = |soql: &str| {
        http.get(format!("{}/services/data/v59.0/query", sandbox.base_url))
            .query(&[("q", soql)])
            .bearer_auth(access)
            .send()
    };
    let where_ =
        |literal: &str| format!("SELECT Id FROM {DEVIATIONS} WHERE SystemModstamp > {literal}");
    let ok = ask(&where_("2024-01-01T00:00:00Z")).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(ok.headers()["sforce-limit-info"]
        .to_str()
        .unwrap()
        .starts_with("api-usage="));
    assert_eq!(
        ask(&where_("2024-01-01T00:00:00+01:00"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    for (literal, code) in [
        ("2024-01-01T00:00:00.000+0000", "MALFORMED_QUERY"),
        ("2024-01-01T00:00:00", "MALFORMED_QUERY"),
        ("'2024-01-01T00:00:00Z'", "INVALID_FIELD"),
    ] {
        let answer = ask(&where_(literal)).await.unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{literal}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body[0]["errorCode"], code, "{literal}: {body}");
    }
    let expired = http
        .get(format!("{}/services/data/v59.0/query", sandbox.base_url))
        .query(&[("q", &where_("2024-01-01T00:00:00Z"))])
        .bearer_auth("00Dsandbox!not-a-session")
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    let body: Value = expired.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");
    sandbox.shutdown.cancel();
}
