//! The connector's client against the CAP test service: V2 and V4 read the same records,
//! server paging and the keyset listing agree, the CSRF handshake, SAP's error bodies.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use millrace_connector::{ConnectorError, Credentials, PageRequest, Source, SourceRecord};
use millrace_model::ObjectType;
use millrace_sap::cap::{CapOptions, CapService, Seed};
use millrace_sap::client::SapSource;
use reqwest::Method;
use serde_json::{json, Value};

fn open(credentials: &Value) -> SapSource {
    SapSource::open(&Credentials::new(credentials.as_object().unwrap().clone())).unwrap()
}

async fn seeded(assets: &[&str], max_orders: u32) -> CapService {
    CapService::start(CapOptions {
        seed: Seed::Excavators {
            assets: assets.iter().map(|a| a.to_string()).collect(),
            max_orders,
        },
        ..CapOptions::default()
    })
    .await
}

/// Reads a whole listing page by page, as the engine does; returns records by remote id and
/// the number of requests.
async fn read_all(
    source: &SapSource,
    object: ObjectType,
    since: Option<chrono::DateTime<Utc>>,
    page_size: u32,
) -> (BTreeMap<String, SourceRecord>, usize) {
    let mut records = BTreeMap::new();
    let mut page = None;
    let mut pages = 0;
    let mut newest = None;
    loop {
        let answer = source
            .read_page(&PageRequest {
                connection_id: "conn_test".to_owned(),
                object,
                since,
                page: page.clone(),
                page_size,
            })
            .await
            .unwrap();
        pages += 1;
        assert!(answer.rejected.is_empty(), "{:?}", answer.rejected);
        for record in answer.records {
            if answer.ordered_by_change {
                // Change order holds across pages.
                if let Some(changed) = record.remote_updated_at {
                    assert!(newest <= Some(changed), "{object} out of change order");
                    newest = Some(changed);
                }
            }
            assert!(
                records.insert(record.remote_id.clone(), record).is_none(),
                "{object}: a record came twice"
            );
        }
        match answer.next_page {
            Some(next) => page = Some(next),
            None => return (records, pages),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_and_v4_read_the_same_records() {
    // The 60 newest orders of excavators A and B hold a replacement bought on a purchase order.
    let service = seeded(&["A", "B"], 60).await;
    let v2 = open(&service.credentials());
    let v4 = open(&service.credentials_v4());
    v2.check().await.unwrap();
    v4.check().await.unwrap();
    for object in [
        ObjectType::Sites,
        ObjectType::Locations,
        ObjectType::Assets,
        ObjectType::WorkRequests,
        ObjectType::WorkOrders,
        ObjectType::Vendors,
        ObjectType::PurchaseOrders,
        ObjectType::Meters,
        ObjectType::MeterReadings,
    ] {
        let (from_v2, _) = read_all(&v2, object, None, 100).await;
        let (from_v4, _) = read_all(&v4, object, None, 100).await;
        assert!(!from_v2.is_empty(), "{object}: nothing read");
        assert_eq!(
            from_v2.keys().collect::<Vec<_>>(),
            from_v4.keys().collect::<Vec<_>>(),
            "{object}"
        );
        for (id, record) in &from_v2 {
            let other = &from_v4[id];
            assert_eq!(record.fields, other.fields, "{object} {id}");
            assert_eq!(
                record.remote_updated_at, other.remote_updated_at,
                "{object} {id}"
            );
            assert_eq!(
                record.remote_created_at, other.remote_created_at,
                "{object} {id}"
            );
            assert_eq!(
                record.remote_deleted_at, other.remote_deleted_at,
                "{object} {id}"
            );
        }
    }
    let (orders, _) = read_all(&v2, ObjectType::WorkOrders, None, 100).await;
    assert_eq!(orders.len(), 60);
    // Two measuring points per excavator, twelve readings each, read by the server's pages of
    // 50 from V2 and V4 alike.
    let (meters, _) = read_all(&v4, ObjectType::Meters, None, 100).await;
    assert_eq!(meters.len(), 4);
    let (readings, pages) = read_all(&v2, ObjectType::MeterReadings, None, 100).await;
    assert_eq!(readings.len(), 48);
    assert!(pages >= 1, "{pages}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_below_the_server_limit_and_id_listings_agree() {
    // The service pages orders by 20 with $skiptoken; 70 orders take several server pages.
    let service = seeded(&["D"], 70).await;
    let source = open(&service.credentials());

    let (small_pages, requests) = read_all(&source, ObjectType::WorkOrders, None, 7).await;
    assert_eq!(small_pages.len(), 70);
    assert!(requests >= 10, "{requests} requests for 70 orders by 7");
    // A page size above the server's limit of 20: the server's smaller pages are followed.
    let (large_pages, requests) = read_all(&source, ObjectType::WorkOrders, None, 500).await;
    assert_eq!(large_pages.len(), 70);
    assert!(
        requests >= 4,
        "{requests} requests for 70 orders, 20 at most each"
    );

    // Id listings follow the server's next links ($skiptoken).
    let mut ids = Vec::new();
    let mut page = None;
    let mut pages = 0;
    loop {
        let answer = source
            .list_ids(ObjectType::WorkOrders, page.as_deref())
            .await
            .unwrap();
        pages += 1;
        ids.extend(answer.remote_ids);
        match answer.next_page {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 4, "70 ids by the server's pages of 20");
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 70);
    assert_eq!(
        sorted,
        small_pages.keys().cloned().collect::<Vec<_>>(),
        "the id listing and the records agree"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_reads_filter_on_last_change_and_see_deletion_flags() {
    let service = seeded(&["A"], 30).await;
    let source = open(&service.credentials());
    let (orders, _) = read_all(&source, ObjectType::WorkOrders, None, 50).await;
    let newest = orders
        .values()
        .filter_map(|r| r.remote_updated_at)
        .max()
        .unwrap();

    // Nothing changed after the newest change time.
    let later = newest + chrono::Duration::milliseconds(1);
    let (none, _) = read_all(&source, ObjectType::WorkOrders, Some(later), 50).await;
    assert!(none.is_empty(), "{:?}", none.keys());

    // A change through the service's own API, with the CSRF handshake, is read; a
    // sub-second change time survives the V2 filter literal.
    let order = orders.keys().next().unwrap().clone();
    let at =
        Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap() + chrono::Duration::milliseconds(678);
    source
        .write(
            Method::PATCH,
            ObjectType::WorkOrders,
            Some(&format!("('{order}')")),
            Some(&json!({"MaintenanceOrderDesc": "Replace bucket teeth",
                         "LastChangeDateTime": format!("/Date({}+0000)/", at.timestamp_millis())})),
        )
        .await
        .unwrap();
    let (changed, _) = read_all(&source, ObjectType::WorkOrders, Some(at), 50).await;
    assert_eq!(changed.keys().collect::<Vec<_>>(), vec![&order]);
    assert_eq!(changed[&order].fields["title"], "Replace bucket teeth");
    assert_eq!(changed[&order].remote_updated_at, Some(at));

    // Equipment marked for deletion is read as a tombstone at its change time.
    source
        .write(
            Method::DELETE,
            ObjectType::Assets,
            Some("(Equipment='10000001',ValidityEndDate=datetime'9999-12-31T00:00:00')"),
            None,
        )
        .await
        .unwrap();
    let (assets, _) = read_all(&source, ObjectType::Assets, Some(newest), 50).await;
    let tombstone = &assets["10000001"];
    assert!(tombstone.remote_deleted_at.is_some());
    assert_eq!(tombstone.remote_deleted_at, tombstone.remote_updated_at);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_current_validity_period_of_equipment_is_read() {
    let service = seeded(&["A"], 3).await;
    let source = open(&service.credentials());
    // Equipment 10000001 had another name until the end of 2020: a row of its own, keyed by
    // its validity end date, changed after the current row.
    let ended = Utc.with_ymd_and_hms(2020, 12, 31, 0, 0, 0).unwrap();
    source
        .write(
            Method::POST,
            ObjectType::Assets,
            None,
            Some(&json!({"Equipment": "10000001",
                         "ValidityEndDate": format!("/Date({})/", ended.timestamp_millis()),
                         "EquipmentName": "Excavator A before its rebuild"})),
        )
        .await
        .unwrap();
    for credentials in [service.credentials(), service.credentials_v4()] {
        let source = open(&credentials);
        let (assets, _) = read_all(&source, ObjectType::Assets, None, 10).await;
        assert_eq!(assets.len(), 1, "{:?}", assets.keys());
        assert_eq!(
            assets["10000001"].fields["name"],
            "Hydraulic mining excavator A"
        );
        let listed = source.list_ids(ObjectType::Assets, None).await.unwrap();
        assert_eq!(listed.remote_ids, vec!["10000001"]);
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_csrf_handshake() {
    let service = seeded(&["B"], 5).await;
    let credentials = service.credentials();
    let url = format!(
        "{}/sap/opu/odata/sap/API_MAINTENANCEORDER/MaintenanceOrder?sap-client=100",
        service.base_url
    );
    // Without a token the service refuses, as Gateway does.
    let refused = reqwest::Client::new()
        .post(&url)
        .basic_auth(&service.options.user, Some(&service.options.password))
        .json(&json!({"MaintenanceOrderDesc": "no token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.headers()["x-csrf-token"], "Required");

    // The connector fetches a token and its session cookie, and writes.
    let source = open(&credentials);
    for n in 0..2 {
        let created = source
            .write(
                Method::POST,
                ObjectType::WorkOrders,
                None,
                Some(
                    &json!({"MaintenanceOrderDesc": format!("Inspect slew ring {n}"),
                             "MaintenanceOrderType": "PM02"}),
                ),
            )
            .await
            .unwrap();
        assert_eq!(
            created["d"]["MaintenanceOrderDesc"],
            format!("Inspect slew ring {n}")
        );
    }

    // The session ends: the next write meets 403 with `x-csrf-token: Required`, fetches a new
    // token once and succeeds.
    service
        .control("faults", json!({"expire_sessions": true}))
        .await;
    let created = source
        .write(
            Method::POST,
            ObjectType::WorkOrders,
            None,
            Some(&json!({"MaintenanceOrderDesc": "After the session ended"})),
        )
        .await
        .unwrap();
    assert_eq!(
        created["d"]["MaintenanceOrderDesc"],
        "After the session ended"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sap_error_bodies_become_clear_stream_errors() {
    let service = seeded(&["C"], 5).await;
    // A custom service override that names an entity set lacking the standard properties:
    // the service answers 400 with its error body, and the message reaches the error.
    let mut credentials = service.credentials();
    credentials["services"] = json!({"work-orders": {"service": "API_EQUIPMENT",
                                                      "entity_set": "Equipment"}});
    let source = open(&credentials);
    let err = source
        .read_page(&PageRequest {
            connection_id: "conn_test".to_owned(),
            object: ObjectType::WorkOrders,
            since: None,
            page: None,
            page_size: 10,
        })
        .await
        .unwrap_err();
    match &err {
        ConnectorError::Status {
            status: 400,
            detail,
        } => {
            assert!(detail.contains("MaintenanceOrder"), "{detail}")
        }
        other => panic!("expected a 400 with SAP's message, got {other:?}"),
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_client_credentials_log_on_and_renew_an_ended_token() {
    let service = seeded(&["E"], 10).await;
    let credentials = service.oauth_credentials_at(&service.base_url);
    let source = open(&credentials);
    source.check().await.unwrap();
    assert_eq!(service.logins().await, 1, "one token for the whole check");
    let (orders, _) = read_all(&source, ObjectType::WorkOrders, None, 4).await;
    assert_eq!(orders.len(), 10);
    assert_eq!(service.logins().await, 1, "the token is reused");

    // Every token ends: the next request renews it once and goes on.
    service
        .control("faults", json!({"expire_sessions": true}))
        .await;
    let (again, _) = read_all(&source, ObjectType::WorkOrders, None, 4).await;
    assert_eq!(again.len(), 10);
    assert_eq!(service.logins().await, 2);

    // A wrong secret is refused at the token endpoint.
    let mut wrong = credentials.clone();
    wrong["client_secret"] = json!("not-the-secret");
    let err = open(&wrong).check().await.unwrap_err();
    assert!(
        matches!(&err, ConnectorError::CredentialsRejected(detail) if detail.contains("invalid_client")),
        "{err:?}"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_serves_the_excavator_data_with_its_printed_credentials() {
    let sandbox = millrace_sap::connector()
        .start_sandbox(millrace_connector::SandboxOptions::default())
        .await
        .unwrap()
        .expect("SAP has a sandbox");
    assert_eq!(sandbox.system, "sap_s4hana");
    let source = open(&sandbox.credentials);
    source.check().await.unwrap();
    let (assets, _) = read_all(&source, ObjectType::Assets, None, 100).await;
    assert_eq!(assets.len(), 5, "one equipment per excavator");
    let (orders, _) = read_all(&source, ObjectType::WorkOrders, None, 500).await;
    assert_eq!(orders.len(), 400);

    sandbox.shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(10), sandbox.task)
        .await
        .expect("the sandbox stops")
        .unwrap();
    assert!(
        source.check().await.is_err(),
        "nothing answers after the shutdown"
    );
}
