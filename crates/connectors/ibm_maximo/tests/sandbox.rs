//! End-to-end tests: the connector against the sandbox over real HTTP, with the real data.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, SubsecRound, Utc};
use millrace_connector::{
    Connector, ConnectorError, Credentials, Page, PageRequest, RunningSandbox, SandboxOptions,
    Source,
};
use millrace_ibm_maximo::MaximoConnector;
use millrace_model::ObjectType;
use serde_json::{json, Value};

struct Harness {
    sandbox: RunningSandbox,
    source: Box<dyn Source>,
    control: String,
    http: reqwest::Client,
}

async fn start(time_zone: &str) -> Harness {
    let connector = MaximoConnector::new();
    let options = SandboxOptions {
        time_zone: Some(time_zone.to_owned()),
        ..SandboxOptions::default()
    };
    let sandbox = connector.start_sandbox(options).await.unwrap().unwrap();
    let credentials = Credentials::new(sandbox.credentials.as_object().unwrap().clone());
    let source = connector.open(&credentials).unwrap();
    let control = sandbox.base_url.trim_end_matches("/maximo").to_owned() + "/_sandbox";
    Harness {
        sandbox,
        source,
        control,
        http: reqwest::Client::new(),
    }
}

fn request(
    object: ObjectType,
    since: Option<DateTime<Utc>>,
    page: Option<String>,
    size: u32,
) -> PageRequest {
    PageRequest {
        connection_id: "conn-1".to_owned(),
        object,
        since,
        page,
        page_size: size,
    }
}

impl Harness {
    /// Reads every page; returns the records by remote id, failing on a duplicate.
    async fn read_all(
        &self,
        object: ObjectType,
        since: Option<DateTime<Utc>>,
        size: u32,
    ) -> BTreeMap<String, millrace_connector::SourceRecord> {
        let mut records = BTreeMap::new();
        let mut page = None;
        loop {
            let Page {
                records: batch,
                next_page,
                ..
            } = self
                .source
                .read_page(&request(object, since, page, size))
                .await
                .unwrap();
            for record in batch {
                let id = record.remote_id.clone();
                assert!(
                    records.insert(id.clone(), record).is_none(),
                    "{object}: {id} came twice"
                );
            }
            match next_page {
                Some(next) => page = Some(next),
                None => return records,
            }
        }
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}{path}", self.control))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/stats", self.control))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn check_accepts_the_key_and_rejects_a_wrong_one_or_a_dead_port() {
    let harness = start("America/New_York").await;
    harness.source.check().await.unwrap();

    let connector = MaximoConnector::new();
    let wrong = json!({"base_url": harness.sandbox.base_url, "api_key": "not-the-key"});
    let source = connector
        .open(&Credentials::new(wrong.as_object().unwrap().clone()))
        .unwrap();
    assert!(
        matches!(source.check().await, Err(ConnectorError::CredentialsRejected(message)) if message.contains("BMXAA7901E"))
    );

    let native = json!({
        "base_url": harness.sandbox.base_url,
        "username": millrace_ibm_maximo::sandbox::SANDBOX_USER,
        "password": millrace_ibm_maximo::sandbox::SANDBOX_PASSWORD,
    });
    let source = connector
        .open(&Credentials::new(native.as_object().unwrap().clone()))
        .unwrap();
    source.check().await.unwrap();

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/maximo", listener.local_addr().unwrap());
    drop(listener);
    let unreachable = json!({"base_url": dead, "api_key": "k"});
    let source = connector
        .open(&Credentials::new(unreachable.as_object().unwrap().clone()))
        .unwrap();
    assert!(matches!(
        source.check().await,
        Err(ConnectorError::Unreachable(_))
    ));
}

#[tokio::test]
async fn every_object_type_reads_every_record_exactly_once() {
    let harness = start("America/New_York").await;
    let counts = harness.stats().await["records"].clone();
    let expected = [
        (ObjectType::Sites, "mxapisite"),
        (ObjectType::Locations, "mxapilocations"),
        (ObjectType::Assets, "mxapiasset"),
        (ObjectType::WorkOrders, "mxapiwodetail"),
        (ObjectType::WorkRequests, "mxapisr"),
        (ObjectType::Parts, "mxapiitem"),
        (ObjectType::PurchaseOrders, "mxapipo"),
        (ObjectType::Vendors, "mxapivendor"),
        (ObjectType::Users, "mxapiperson"),
        (ObjectType::Meters, "mxapiassetmeter"),
        (ObjectType::MeterReadings, "mxapimeterreading"),
    ];
    let mut all = BTreeMap::new();
    for (object, structure) in expected {
        let size = if object == ObjectType::MeterReadings {
            5000
        } else {
            1000
        };
        let records = harness.read_all(object, None, size).await;
        assert_eq!(
            records.len() as u64,
            counts[structure].as_u64().unwrap(),
            "{object}"
        );
        assert!(!records.is_empty(), "{object}");
        all.insert(object, records);
    }

    let work_order = &all[&ObjectType::WorkOrders]["MINE/EX00002"];
    assert_eq!(work_order.fields["title"], json!("L/H BUCKET CYL LEAKING."));
    assert_eq!(work_order.fields["asset"]["remote_id"], json!("MINE/EX-A"));
    assert_eq!(work_order.fields["work_type"], json!("corrective"));
    assert!(work_order.remote_updated_at.is_some());
    assert!(work_order.custom_fields.contains_key("_rowstamp"));
    let with_tasks = all[&ObjectType::WorkOrders]
        .values()
        .filter(|r| !r.fields["tasks"].as_array().unwrap().is_empty())
        .count();
    assert!(with_tasks > 1000, "{with_tasks} work orders have tasks");

    let excavator = &all[&ObjectType::Assets]["MINE/EX-A"];
    assert_eq!(excavator.fields["status"], json!("operating"));
    let recorder = all[&ObjectType::Assets]
        .values()
        .find(|r| r.fields["serial_number"] == json!("3D-42200"))
        .unwrap();
    assert_eq!(recorder.fields["manufacturer"], json!("CANTERBURY-S"));
    assert_eq!(recorder.fields["description"], json!("CUSP-M4 recorder"));

    let part = all[&ObjectType::Parts]
        .values()
        .find(|r| !r.fields["stock"].as_array().unwrap().is_empty())
        .unwrap();
    assert_eq!(part.fields["stock"][0]["storeroom"], json!("CENTRAL"));
    let order = all[&ObjectType::PurchaseOrders].values().next().unwrap();
    assert!(!order.fields["lines"].as_array().unwrap().is_empty());
    assert!(order.fields["vendor"]["remote_id"]
        .as_str()
        .unwrap()
        .starts_with("MINING/SUP"));
    let reading = all[&ObjectType::MeterReadings].values().next().unwrap();
    assert!(reading.fields["meter"]["remote_id"]
        .as_str()
        .unwrap()
        .starts_with("MINE/EX-"));
    assert!(all[&ObjectType::Sites].contains_key("AK"));

    let recent = Utc::now() - Duration::days(30);
    let recent_orders = all[&ObjectType::WorkOrders]
        .values()
        .filter(|r| r.remote_updated_at.unwrap() >= recent)
        .count();
    assert!(
        (20..2000).contains(&recent_orders),
        "{recent_orders} work orders in the last 30 days"
    );

    let ids = harness
        .source
        .list_ids(ObjectType::WorkOrders, None)
        .await
        .unwrap();
    assert_eq!(ids.remote_ids.len(), 1000);
    assert!(ids.next_page.is_some());
}

/// Reads work orders since `since` and checks the answer against a full read.
async fn check_since(harness: &Harness, since: DateTime<Utc>) {
    let everything = harness.read_all(ObjectType::WorkOrders, None, 1000).await;
    let expected: BTreeSet<&String> = everything
        .iter()
        .filter(|(_, r)| r.remote_updated_at.unwrap() >= since)
        .map(|(id, _)| id)
        .collect();
    let got = harness
        .read_all(ObjectType::WorkOrders, Some(since), 100)
        .await;
    let got_ids: BTreeSet<&String> = got.keys().collect();
    assert_eq!(got_ids, expected, "since {since}");
    assert!(got.values().all(|r| r.remote_updated_at.unwrap() >= since));
}

#[tokio::test]
async fn since_loses_nothing_at_the_boundary_in_zones_away_from_utc() {
    for zone in ["Pacific/Auckland", "America/New_York"] {
        let harness = start(zone).await;
        let boundary = (Utc::now() - Duration::days(3)).trunc_subsecs(0);
        for (offset_ms, name) in [
            (-1000, "BEFORE"),
            (0, "AT"),
            (0, "AT2"),
            (400, "JUSTAFTER"),
            (1000, "AFTER"),
        ] {
            let changed = boundary + Duration::milliseconds(offset_ms);
            let body = json!({"wonum": name, "siteid": "MINE", "description": name, "status": "APPR", "istask": false,
                              "changedate": changed.to_rfc3339()});
            harness
                .control(reqwest::Method::POST, "/os/mxapiwodetail", body)
                .await;
        }
        check_since(&harness, boundary).await;
        let got = harness
            .read_all(ObjectType::WorkOrders, Some(boundary), 100)
            .await;
        for name in ["AT", "AT2", "JUSTAFTER", "AFTER"] {
            assert!(
                got.contains_key(&format!("MINE/{name}")),
                "{zone}: {name} missing"
            );
        }
        assert!(!got.contains_key("MINE/BEFORE"), "{zone}");
        let just_after = &got["MINE/JUSTAFTER"];
        assert_eq!(
            just_after.remote_updated_at.unwrap(),
            boundary + Duration::milliseconds(400)
        );

        // A naive literal in the control API is the server's wall clock, as a where literal is.
        let raw = just_after.remote_data["changedate"].as_str().unwrap();
        let offset = &raw[raw.len() - 6..];
        assert_ne!(offset, "+00:00", "{zone} answers in its own offset");
        check_since(&harness, boundary - Duration::days(30)).await;
    }
}

#[tokio::test]
async fn many_records_sharing_one_change_time_all_arrive_across_pages() {
    let harness = start("America/New_York").await;
    let shared = (Utc::now() - Duration::hours(6)).trunc_subsecs(0);
    for n in 0..250 {
        let body = json!({"wonum": format!("BULK{n:03}"), "siteid": "MINE", "istask": false, "status": "WAPPR",
                          "description": "bulk", "changedate": shared.to_rfc3339()});
        harness
            .control(reqwest::Method::POST, "/os/mxapiwodetail", body)
            .await;
    }
    let got = harness
        .read_all(ObjectType::WorkOrders, Some(shared), 100)
        .await;
    let bulk = got.keys().filter(|id| id.starts_with("MINE/BULK")).count();
    assert_eq!(bulk, 250);
}

#[tokio::test]
async fn a_change_between_pages_does_not_shift_a_stable_listing() {
    let harness = start("America/New_York").await;
    let before = harness.read_all(ObjectType::WorkOrders, None, 1000).await;

    let first = harness
        .source
        .read_page(&request(ObjectType::WorkOrders, None, None, 100))
        .await
        .unwrap();
    assert!(first.ordered_by_change);
    assert_eq!(first.total, Some(before.len() as u64));
    for record in first.records.iter().take(5) {
        let wonum = record.fields["number"].as_str().unwrap();
        harness
            .control(
                reqwest::Method::PATCH,
                &format!("/os/mxapiwodetail/MINE/{wonum}"),
                json!({"status": "INPRG"}),
            )
            .await;
    }
    harness
        .control(
            reqwest::Method::DELETE,
            "/os/mxapiwodetail/MINE/EX05000",
            Value::Null,
        )
        .await;

    let mut seen: BTreeSet<String> = first.records.iter().map(|r| r.remote_id.clone()).collect();
    let mut page = first.next_page;
    while let Some(next) = page {
        let batch = harness
            .source
            .read_page(&request(ObjectType::WorkOrders, None, Some(next), 100))
            .await
            .unwrap();
        for record in batch.records {
            assert!(
                seen.insert(record.remote_id.clone()),
                "{} came twice",
                record.remote_id
            );
        }
        page = batch.next_page;
    }
    let mut expected: BTreeSet<String> = before.keys().cloned().collect();
    expected.remove("MINE/EX05000");
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn rate_limits_are_waited_out_and_revoked_credentials_reported() {
    let harness = start("America/New_York").await;
    harness
        .control(
            reqwest::Method::POST,
            "/faults",
            json!({"rate_limit": {"requests": 2, "retry_after_seconds": 1}}),
        )
        .await;
    let started = std::time::Instant::now();
    let page = harness
        .source
        .read_page(&request(ObjectType::Sites, None, None, 10))
        .await
        .unwrap();
    assert_eq!(page.records.len(), 10);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    assert_eq!(harness.stats().await["rate_limited"], json!(2));

    harness
        .control(
            reqwest::Method::POST,
            "/faults",
            json!({"reject_auth": true}),
        )
        .await;
    let result = harness
        .source
        .read_page(&request(ObjectType::Sites, None, None, 10))
        .await;
    assert!(matches!(
        result,
        Err(ConnectorError::CredentialsRejected(_))
    ));
}

#[tokio::test]
async fn bad_where_syntax_is_a_status_error_with_maximo_s_message() {
    let harness = start("America/New_York").await;
    let href = format!(
        "{}/oslc/os/mxapiwodetail?lean=1&oslc.select=wonum&oslc.where=status%3D%27APPR%27",
        harness.sandbox.base_url
    );
    let result = harness
        .source
        .read_page(&request(ObjectType::WorkOrders, None, Some(href), 10))
        .await;
    match result {
        Err(ConnectorError::Status {
            status: 400,
            detail,
        }) => assert!(detail.contains("oslc.where"), "{detail}"),
        other => panic!("expected a 400, got {other:?}"),
    }

    // The api route and the prefixed (non-lean) form answer too.
    let url = format!(
        "{}/api/os/mxapisite?oslc.select=siteid,changedate&oslc.pageSize=2",
        harness.sandbox.base_url
    );
    let key = harness.sandbox.credentials["api_key"].as_str().unwrap();
    let body: Value = harness
        .http
        .get(url)
        .header("apikey", key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["rdfs:member"].as_array().unwrap().len(), 2);
    assert!(body["rdfs:member"][0]["spi:siteid"].is_string());
    assert!(body["oslc:responseInfo"]["oslc:nextPage"].is_object());
}

#[tokio::test]
async fn incremental_parts_see_stock_only_changes() {
    let harness = start("America/New_York").await;
    let all = harness.read_all(ObjectType::Parts, None, 100).await;
    let (remote_id, _) = all
        .iter()
        .find(|(_, r)| r.fields["stock"][0]["storeroom"] == json!("CENTRAL"))
        .unwrap();
    let itemnum = remote_id.strip_prefix("SET1/").unwrap();

    let since = Utc::now().trunc_subsecs(0);
    let before_change = harness.read_all(ObjectType::Parts, Some(since), 100).await;
    assert!(!before_change.contains_key(remote_id));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let path = format!("/os/mxapiinventory/MINE/CENTRAL/{itemnum}");
    harness
        .control(reqwest::Method::PATCH, &path, json!({"curbaltotal": 99}))
        .await;
    let changed = harness.read_all(ObjectType::Parts, Some(since), 100).await;
    let part = &changed[remote_id];
    assert!(part.fields["stock"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["quantity_on_hand"].as_f64() == Some(99.0)));
    assert!(part.remote_updated_at.unwrap() >= since);
    assert_eq!(
        all[remote_id].remote_updated_at.map(|t| t < since),
        Some(true)
    );
}
