//! The benchmark mode: generated work orders served on demand.

use chrono::{Duration, Utc};
use millrace_connector::{Connector, Credentials, PageRequest, SandboxOptions};
use millrace_ibm_maximo::MaximoConnector;
use millrace_model::ObjectType;
use serde_json::json;

#[tokio::test]
async fn a_large_generated_set_pages_and_filters_by_change_date() {
    let count = 300_000;
    let connector = MaximoConnector::new();
    let options = SandboxOptions {
        synthetic_work_orders: Some(count),
        ..SandboxOptions::default()
    };
    let sandbox = connector.start_sandbox(options).await.unwrap().unwrap();
    let credentials = Credentials::new(sandbox.credentials.as_object().unwrap().clone());
    let source = connector.open(&credentials).unwrap();
    let request = |since, page| PageRequest {
        connection_id: "bench".to_owned(),
        object: ObjectType::WorkOrders,
        since,
        page,
        page_size: 1000,
    };

    let started = std::time::Instant::now();
    let nulls = source.read_page(&request(None, None)).await.unwrap();
    assert!(
        nulls.records.is_empty(),
        "no generated record lacks a changedate"
    );
    let first = source
        .read_page(&request(None, nulls.next_page))
        .await
        .unwrap();
    assert_eq!(first.total, Some(count));
    assert_eq!(first.records.len(), 1000);
    let second = source
        .read_page(&request(None, first.next_page.clone()))
        .await
        .unwrap();
    // The next page starts again at the second of the last record (keyset paging), no earlier.
    let last = first.records.last().unwrap().remote_updated_at.unwrap();
    let resumed = second.records[0].remote_updated_at.unwrap();
    assert!(resumed >= millrace_ibm_maximo::listing::second_of(last));
    assert!(second.records.last().unwrap().remote_updated_at.unwrap() > last);
    eprintln!("first two pages of {count} in {:?}", started.elapsed());

    // A change through the control API moves one record to the newest end.
    let control = sandbox.base_url.trim_end_matches("/maximo").to_owned() + "/_sandbox";
    let response = reqwest::Client::new()
        .patch(format!("{control}/os/mxapiwodetail/PLANT1/W0000007"))
        .json(&json!({"status": "COMP"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());

    let since = Utc::now() - Duration::hours(1);
    // Every read begins with the records without a change time (none here), then the keyset
    // phase, whose first page counts the changed records.
    let nulls = source.read_page(&request(Some(since), None)).await.unwrap();
    assert!(nulls.records.is_empty());
    let recent = source
        .read_page(&request(Some(since), nulls.next_page))
        .await
        .unwrap();
    let expected = count / (20 * 24) + 1;
    let total = recent.total.unwrap();
    assert!(
        total.abs_diff(expected) <= 2,
        "{total} changed in the last hour, expected {expected}"
    );
    assert!(recent
        .records
        .iter()
        .any(|r| r.remote_id == "PLANT1/W0000007"));
}

/// Prints how long the connector takes to read 200,000 generated work orders, 500 a page, the
/// way the sync benchmark reads them. Run it in a release build:
/// `cargo test --release -p millrace-ibm-maximo --test synthetic -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a check; run it by hand in a release build"]
async fn time_a_full_read_of_200k_generated_work_orders() {
    let count = 200_000;
    let connector = MaximoConnector::new();
    let options = SandboxOptions {
        synthetic_work_orders: Some(count),
        ..SandboxOptions::default()
    };
    let sandbox = connector.start_sandbox(options).await.unwrap().unwrap();
    let credentials = Credentials::new(sandbox.credentials.as_object().unwrap().clone());
    let source = connector.open(&credentials).unwrap();

    let started = std::time::Instant::now();
    let mut ids = std::collections::BTreeSet::new();
    let mut page = None;
    let mut pages = 0;
    loop {
        let request = PageRequest {
            connection_id: "bench".to_owned(),
            object: ObjectType::WorkOrders,
            since: None,
            page,
            page_size: 500,
        };
        let answer = source.read_page(&request).await.unwrap();
        pages += 1;
        ids.extend(answer.records.into_iter().map(|record| record.remote_id));
        match answer.next_page {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    assert_eq!(ids.len() as u64, count);
    eprintln!(
        "read {count} generated work orders in {pages} pages of 500 in {:?}",
        started.elapsed()
    );
}
