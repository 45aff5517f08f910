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
    /// Reads every page; returns the records by remote id. A record delivered twice (the
    /// boundary second of keyset paging) keeps its later delivery, as the engine's store does.
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
                records.insert(record.remote_id.clone(), record);
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
    assert!(matches!(
        source.check().await,
        Err(ConnectorError::CredentialsRejected(message)) if message.contains("BMXAA7901E")
    ));

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
            let body = json!({
                "wonum": name,
                "siteid": "MINE",
                "description": name,
                "status": "APPR",
                "istask": false,
                "changedate": changed.to_rfc3339(),
            });
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
        let body = json!({
            "wonum": format!("BULK{n:03}"),
            "siteid": "MINE",
            "istask": false,
            "status": "WAPPR",
            "description": "bulk",
            "changedate": shared.to_rfc3339(),
        });
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
    let long_ago = Utc::now() - Duration::days(3650);
    let sites = harness
        .read_all(ObjectType::Sites, Some(long_ago), 10)
        .await;
    assert!(!sites.is_empty());
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
    let continuation = json!({"phase": "nulls", "href": href}).to_string();
    let result = harness
        .source
        .read_page(&request(
            ObjectType::WorkOrders,
            None,
            Some(continuation),
            10,
        ))
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

// Keyset paging: what the sync engine relies on when a listing reports `ordered_by_change`.

/// What one read delivered, kept as the engine keeps it: the latest delivery of each record and
/// the newest change time seen (`max_seen`).
#[derive(Default)]
struct Delivered {
    records: BTreeMap<String, millrace_connector::SourceRecord>,
    max_seen: Option<DateTime<Utc>>,
    pages: usize,
}

impl Delivered {
    fn take(&mut self, page: &Page) {
        assert!(page.ordered_by_change);
        for record in &page.records {
            self.max_seen = self.max_seen.max(record.remote_updated_at);
            self.records
                .insert(record.remote_id.clone(), record.clone());
        }
        self.pages += 1;
    }

    fn ids(&self) -> BTreeSet<String> {
        self.records.keys().cloned().collect()
    }
}

impl Harness {
    async fn page(&self, since: Option<DateTime<Utc>>, page: Option<String>, size: u32) -> Page {
        self.source
            .read_page(&request(ObjectType::WorkOrders, since, page, size))
            .await
            .unwrap()
    }

    /// Reads pages of work orders until `pages` of them carried records (or the end); returns
    /// the continuation.
    async fn read_pages_with_records(
        &self,
        since: Option<DateTime<Utc>>,
        mut next: Option<String>,
        pages: usize,
        delivered: &mut Delivered,
    ) -> Option<String> {
        let mut with_records = 0;
        loop {
            let page = self.page(since, next, 100).await;
            delivered.take(&page);
            with_records += usize::from(!page.records.is_empty());
            next = page.next_page;
            if next.is_none() || with_records == pages {
                return next;
            }
            assert!(delivered.pages < 1000, "the listing does not end");
        }
    }

    async fn patch_work_order(&self, remote_id: &str, status: &str) {
        self.control(
            reqwest::Method::PATCH,
            &format!("/os/mxapiwodetail/{remote_id}"),
            json!({ "status": status }),
        )
        .await;
    }
}

/// Work orders changed at or after `since` (all with `None`), read whole, before any change.
async fn expected_ids(harness: &Harness, since: Option<DateTime<Utc>>) -> BTreeSet<String> {
    harness
        .read_all(ObjectType::WorkOrders, None, 1000)
        .await
        .into_iter()
        .filter(|(_, r)| since.is_none_or(|since| r.remote_updated_at.unwrap() >= since))
        .map(|(id, _)| id)
        .collect()
}

#[tokio::test]
async fn a_record_changed_mid_listing_is_not_lost_to_the_next_watermark() {
    let harness = start("America/New_York").await;
    for since in [None, Some(Utc::now() - Duration::days(60))] {
        let expected = expected_ids(&harness, since).await;
        let mut read = Delivered::default();
        let next = harness
            .read_pages_with_records(since, None, 1, &mut read)
            .await;

        // One record already delivered changes, then, over a second later, one not read yet.
        // With stable paging the second arrived early carrying the newest time, and the
        // watermark it set (less a 1s overlap) passed the first change.
        let passed = read.records.keys().next().unwrap().clone();
        let ahead = expected
            .iter()
            .find(|id| !read.records.contains_key(*id))
            .unwrap()
            .clone();
        harness.patch_work_order(&passed, "INPRG").await;
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        harness.patch_work_order(&ahead, "COMP").await;

        harness
            .read_pages_with_records(since, next, usize::MAX, &mut read)
            .await;
        assert_eq!(read.ids(), expected, "since {since:?}");

        let watermark = read.max_seen.unwrap() - Duration::seconds(1);
        let next_read = harness
            .read_all(ObjectType::WorkOrders, Some(watermark), 100)
            .await;
        read.records.extend(next_read);
        assert_eq!(
            read.records[&passed].fields["remote_status"],
            json!("INPRG")
        );
        assert_eq!(read.records[&ahead].fields["remote_status"], json!("COMP"));
    }
}

#[tokio::test]
async fn a_resume_at_the_newest_time_seen_misses_nothing() {
    let harness = start("America/New_York").await;
    for since in [None, Some(Utc::now() - Duration::days(60))] {
        let expected = expected_ids(&harness, since).await;
        let mut read = Delivered::default();
        let next = harness
            .read_pages_with_records(since, None, 1, &mut read)
            .await;
        let ahead = expected
            .iter()
            .rev()
            .find(|id| !read.records.contains_key(*id))
            .unwrap()
            .clone();
        harness.patch_work_order(&ahead, "COMP").await;
        harness
            .read_pages_with_records(since, next, 1, &mut read)
            .await;

        // The engine resumes a crashed change-ordered read at max_seen, without continuation.
        let resume_at = read.max_seen;
        harness
            .read_pages_with_records(resume_at, None, usize::MAX, &mut read)
            .await;
        assert_eq!(read.ids(), expected, "since {since:?}");
        assert_eq!(read.records[&ahead].fields["remote_status"], json!("COMP"));
    }
}

#[tokio::test]
async fn a_second_shared_by_more_than_a_page_is_read_whole_and_the_listing_ends() {
    let harness = start("America/New_York").await;
    let shared = (Utc::now() - Duration::hours(6)).trunc_subsecs(0);
    for n in 0..250 {
        let body = json!({
            "wonum": format!("BULK{n:03}"),
            "siteid": "MINE",
            "istask": false,
            "status": "WAPPR",
            "description": "bulk",
            "changedate": shared.to_rfc3339(),
        });
        harness
            .control(reqwest::Method::POST, "/os/mxapiwodetail", body)
            .await;
    }
    let everything = expected_ids(&harness, None).await;
    for since in [Some(shared), Some(shared - Duration::days(2)), None] {
        let mut read = Delivered::default();
        harness
            .read_pages_with_records(since, None, usize::MAX, &mut read)
            .await;
        let bulk = read
            .records
            .keys()
            .filter(|id| id.starts_with("MINE/BULK"))
            .count();
        assert_eq!(bulk, 250, "since {since:?}");
        if since.is_none() {
            assert_eq!(read.ids(), everything);
        }
    }
}

#[tokio::test]
async fn sub_second_times_around_a_crowded_second_are_all_read() {
    let harness = start("Pacific/Auckland").await;
    let second = (Utc::now() - Duration::hours(3)).trunc_subsecs(0);
    let mut created = BTreeSet::new();
    let mut add = |name: String, at: DateTime<Utc>| {
        created.insert(format!("MINE/{name}"));
        json!({"wonum": name, "siteid": "MINE", "istask": false, "status": "WAPPR",
               "changedate": at.to_rfc3339()})
    };
    let mut bodies = Vec::new();
    for n in 0..30 {
        bodies.push(add(
            format!("PRE{n:02}"),
            second - Duration::milliseconds(1000 - n * 33),
        ));
    }
    for n in 0..150 {
        bodies.push(add(
            format!("IN{n:03}"),
            second + Duration::milliseconds(n * 6 + 1),
        ));
    }
    bodies.push(add("INZERO".into(), second));
    bodies.push(add("INLAST".into(), second + Duration::milliseconds(999)));
    for n in 0..30 {
        bodies.push(add(
            format!("POST{n:02}"),
            second + Duration::milliseconds(1000 + n * 30),
        ));
    }
    for body in bodies {
        harness
            .control(reqwest::Method::POST, "/os/mxapiwodetail", body)
            .await;
    }

    for size in [100, 7, 60, 250] {
        let mut seen = BTreeSet::new();
        let mut next = None;
        loop {
            let page = harness
                .page(Some(second - Duration::seconds(5)), next, size)
                .await;
            seen.extend(page.records.iter().map(|r| r.remote_id.clone()));
            next = page.next_page;
            if next.is_none() {
                break;
            }
        }
        let missing: Vec<_> = created.difference(&seen).collect();
        assert!(missing.is_empty(), "page size {size}: {missing:?} missing");
    }
}

#[tokio::test]
async fn records_without_a_change_time_come_first_in_every_read() {
    let harness = start("America/New_York").await;
    let body = json!({"wonum": "NOCHANGE", "siteid": "MINE", "istask": false, "status": "WAPPR",
                      "changedate": null});
    harness
        .control(reqwest::Method::POST, "/os/mxapiwodetail", body)
        .await;
    let first = harness.page(None, None, 100).await;
    assert_eq!(first.records.len(), 1);
    assert_eq!(first.records[0].remote_id, "MINE/NOCHANGE");
    assert_eq!(first.total, Some(1));
    let second = harness.page(None, first.next_page, 100).await;
    assert_eq!(second.records.len(), 100);
    assert_eq!(
        second.total,
        Some(expected_ids(&harness, None).await.len() as u64)
    );
    // An incremental read cannot tell whether a record without a change time changed: it
    // reads it again (content hashes absorb it when it did not).
    let recent = harness
        .read_all(ObjectType::WorkOrders, Some(Utc::now()), 1000)
        .await;
    assert!(recent.contains_key("MINE/NOCHANGE"));
}

#[tokio::test]
async fn records_created_without_maximo_s_defaults_get_them_and_are_read() {
    let harness = start("America/New_York").await;
    let since = Utc::now().trunc_subsecs(0) - Duration::seconds(1);
    let created = harness
        .control(
            reqwest::Method::POST,
            "/os/mxapiwodetail",
            json!({"siteid": "MINE", "description": "created without istask"}),
        )
        .await;
    assert_eq!(created["istask"], json!(false));
    assert_eq!(created["status"], json!("WAPPR"));
    assert_eq!(created["orgid"], json!("MINING"));
    let remote_id = created["_key"].as_str().unwrap();

    let read = harness
        .read_all(ObjectType::WorkOrders, Some(since), 100)
        .await;
    assert_eq!(
        read[remote_id].fields["remote_status"],
        json!("WAPPR"),
        "{:?}",
        read.keys().collect::<Vec<_>>()
    );

    // A stock row created without its item set still joins its item.
    let all = harness.read_all(ObjectType::Parts, None, 500).await;
    let itemnum = all.keys().next().unwrap().strip_prefix("SET1/").unwrap();
    let stock = harness
        .control(
            reqwest::Method::POST,
            "/os/mxapiinventory",
            json!({"siteid": "MINE", "location": "FIELD2", "itemnum": itemnum, "curbaltotal": 5}),
        )
        .await;
    assert_eq!(stock["itemsetid"], json!("SET1"));
    let parts = harness.read_all(ObjectType::Parts, Some(since), 500).await;
    let stock = parts[&format!("SET1/{itemnum}")].fields["stock"].clone();
    assert!(
        stock
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row["storeroom"] == json!("FIELD2")),
        "{stock}"
    );
}

#[tokio::test]
async fn an_expired_stable_paging_set_starts_its_phase_again() {
    let harness = start("America/New_York").await;
    for n in 0..3 {
        let body = json!({"wonum": format!("NULL{n}"), "siteid": "MINE", "istask": false,
                          "status": "WAPPR", "changedate": null});
        harness
            .control(reqwest::Method::POST, "/os/mxapiwodetail", body)
            .await;
    }
    let first = harness.page(None, None, 1).await;
    assert_eq!(first.records.len(), 1);
    // Other listings open enough stable-paging sets that the server drops this one, as a
    // real server drops sets after a timeout or a restart.
    for _ in 0..70 {
        harness.page(None, None, 1).await;
    }
    let mut delivered = std::collections::BTreeSet::new();
    delivered.insert(first.records[0].remote_id.clone());
    let mut next = first.next_page;
    loop {
        let page = harness.page(None, next, 1).await;
        let nulls: Vec<_> = page
            .records
            .iter()
            .filter(|record| record.remote_updated_at.is_none())
            .collect();
        for record in &nulls {
            delivered.insert(record.remote_id.clone());
        }
        if nulls.is_empty() {
            break;
        }
        next = page.next_page;
    }
    let expected: std::collections::BTreeSet<String> =
        (0..3).map(|n| format!("MINE/NULL{n}")).collect();
    assert_eq!(
        delivered, expected,
        "the restarted phase delivers every record"
    );
}
