//! The checks every connector passes: SPEC section 3 made executable.
//!
//! Each check is an `async fn(&dyn Subject, Backend)` that starts its own world (store, engine,
//! HTTP API), its own source through the subject and a [`FaultProxy`] in front of it, drives
//! syncs through the management API, and compares what a client reads with what the source
//! holds. [`crate::compliance_tests!`] declares them all as tests for one connector.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, Duration as ChronoDuration, NaiveDate, SubsecRound, Utc};
use futures::FutureExt;
use millrace_connector::http::RetryPolicy;
use millrace_connector::{Credentials, PageRequest};
use millrace_model::ObjectType;
use reqwest::Method;
use serde_json::Value;

use crate::proxy::{Fault, FaultProxy, RetryAfter, Rule};
use crate::subject::{ChangeTime, SourceFault, Subject, TestSource};
use crate::world::{test_config, Backend, World};

/// The source client policy every check runs with: short timeouts and waits, so that faults
/// resolve in seconds.
pub fn harness_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 4,
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        max_wait: Duration::from_secs(5),
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
    }
}

/// One check's world: Millrace, the source and the proxy in front of it.
pub struct Bench {
    pub world: World,
    pub source: Arc<dyn TestSource>,
    pub proxy: FaultProxy,
}

impl Bench {
    /// Starts a world on `backend` with `page_size`, and a source in `zone`.
    pub async fn start(
        subject: &dyn Subject,
        backend: Backend,
        page_size: u32,
        zone: Option<&str>,
    ) -> Bench {
        RetryPolicy::configure(harness_policy());
        let connector = subject.connector();
        let system = connector.system().id.clone();
        let mut registry = millrace_connector::Registry::new();
        registry.register(connector);
        let mut config = test_config();
        config.page_size = page_size;
        config.credit_pool = 100_000;
        let world = World::start_with(backend, registry, &system, config).await;
        let source = subject.start(zone).await;
        let proxy = FaultProxy::start(&source.base_url()).await;
        Bench {
            world,
            source,
            proxy,
        }
    }

    /// Credentials that reach the source through the proxy.
    pub fn credentials(&self) -> Value {
        self.source
            .credentials(&self.proxy.route(&self.source.base_url()))
    }

    /// Connects with `credentials` and a lookback, and waits for the initial sync to settle.
    pub async fn connect_with(&self, credentials: Value, lookback_days: u32) -> (String, String) {
        let (id, token) = self
            .world
            .connect("compliance", credentials, lookback_days)
            .await;
        self.world.wait_idle(&id).await;
        (id, token)
    }

    /// Connects through the proxy and waits for the initial sync to settle.
    pub async fn connect(&self, lookback_days: u32) -> (String, String) {
        self.connect_with(self.credentials(), lookback_days).await
    }

    /// Every record of `object` of a connection, deleted ones included, by remote id; fails on
    /// a remote id listed twice.
    pub async fn stored(&self, id: &str, object: ObjectType) -> BTreeMap<String, Value> {
        let path = format!(
            "/v1/connections/{id}/{}?include_deleted=true&include_remote_data=true",
            object.slug()
        );
        let records = self.world.admin_list_path(&path).await;
        let mut by_id = BTreeMap::new();
        for record in records {
            let remote_id = record["remote_id"].as_str().unwrap().to_owned();
            assert!(
                by_id.insert(remote_id.clone(), record).is_none(),
                "{object}: remote id {remote_id} listed twice"
            );
        }
        by_id
    }

    /// Asserts the store holds exactly what the source holds for `object`: every live source
    /// record once with its current marker, and every other stored record marked deleted.
    pub async fn assert_matches_source(&self, id: &str, object: ObjectType) {
        let truth = self.source.truth(object).await;
        let stored = self.stored(id, object).await;
        let mut live = HashSet::new();
        for row in &truth {
            let record = stored.get(&row.remote_id).unwrap_or_else(|| {
                panic!("{object} {} is in the source but not stored", row.remote_id)
            });
            assert!(
                record["remote_deleted_at"].is_null(),
                "{object} {} is live in the source but marked deleted: {record}",
                row.remote_id
            );
            if let Some(marker) = &row.marker {
                assert_eq!(
                    self.source.marker_of(object, record).as_deref(),
                    Some(marker.as_str()),
                    "{object} {}: stored content is not the source's: {record}",
                    row.remote_id
                );
            }
            live.insert(row.remote_id.clone());
        }
        for (remote_id, record) in &stored {
            if !live.contains(remote_id) {
                assert!(
                    !record["remote_deleted_at"].is_null(),
                    "{object} {remote_id} is gone from the source but not marked deleted"
                );
            }
        }
    }

    /// Asks for a sync and waits for its run; returns the run.
    pub async fn sync(&self, id: &str) -> Value {
        self.world.sync_and_wait(id).await
    }

    /// A stream of a connection as the management API shows it.
    pub async fn stream(&self, id: &str, object: ObjectType) -> Value {
        let connection = self.world.admin_get(&format!("/v1/connections/{id}")).await;
        crate::world::stream(&connection, object.slug()).clone()
    }

    /// Stops the world and drops its database.
    pub async fn finish(self) {
        self.world.finish().await;
    }
}

/// Says that a check, or part of one, skipped what only the HTTP proxy can inject.
fn skipped_without_proxy(what: &str) {
    eprintln!("skipped: {what}: the source is not reached over HTTP, through the proxy");
}

fn marker(text: &str, n: usize) -> String {
    format!("{text} {n}")
}

/// The initial sync is a complete snapshot: master data whole, transactional data exactly
/// the lookback window.
pub async fn initial_sync_is_a_complete_snapshot(subject: &dyn Subject, backend: Backend) {
    let bench = Bench::start(subject, backend, 4, None).await;
    let source = &bench.source;
    let (master, transactional) = (source.master(), source.transactional());
    let now = Utc::now().trunc_subsecs(3);
    let old = now - ChronoDuration::days(400);
    let recent = now - ChronoDuration::days(10);
    let mut inside = HashSet::new();
    let mut outside = HashSet::new();
    for n in 0..3 {
        source
            .create(master, &marker("old asset", n), ChangeTime::At(old))
            .await;
        source
            .create(master, &marker("new asset", n), ChangeTime::Now)
            .await;
        outside.insert(
            source
                .create(transactional, &marker("old order", n), ChangeTime::At(old))
                .await,
        );
        inside.insert(
            source
                .create(
                    transactional,
                    &marker("recent order", n),
                    ChangeTime::At(recent),
                )
                .await,
        );
        inside.insert(
            source
                .create(transactional, &marker("new order", n), ChangeTime::Now)
                .await,
        );
    }
    let (id, _token) = bench.connect(30).await;
    crate::world::assert_all_idle(
        &bench
            .world
            .admin_get(&format!("/v1/connections/{id}"))
            .await,
    );

    bench.assert_matches_source(&id, master).await;
    let stored: HashSet<String> = bench.stored(&id, transactional).await.into_keys().collect();
    assert_eq!(
        stored, inside,
        "transactional data must be exactly the lookback window"
    );
    assert!(stored.is_disjoint(&outside));
    bench.finish().await;
}

/// A second run with no change in the source stores nothing and announces nothing.
pub async fn an_unchanged_source_stores_and_announces_nothing(
    subject: &dyn Subject,
    backend: Backend,
) {
    let bench = Bench::start(subject, backend, 3, None).await;
    let source = &bench.source;
    for n in 0..7 {
        source
            .create(source.transactional(), &marker("order", n), ChangeTime::Now)
            .await;
        source
            .create(source.master(), &marker("asset", n), ChangeTime::Now)
            .await;
    }
    let (id, token) = bench.connect(30).await;
    let object = source.transactional().slug();
    let (first, cursor) = bench.world.list_all_from(&token, object, None).await;
    assert_eq!(first.len(), 7);

    for _ in 0..2 {
        let run = bench.sync(&id).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["records_created"], 0, "{run}");
        assert_eq!(run["records_updated"], 0, "{run}");
        assert_eq!(run["records_deleted"], 0, "{run}");
        let (later, _) = bench
            .world
            .list_all_from(&token, object, Some(&cursor))
            .await;
        assert!(
            later.is_empty(),
            "an unchanged source announced changes: {later:?}"
        );
    }
    bench.finish().await;
}

/// Comparable content of a stored record: what the source sent and when it changed.
fn content(record: &Value) -> Value {
    serde_json::json!({
        "remote_updated_at": record["remote_updated_at"],
        "remote_deleted_at": record["remote_deleted_at"],
        "remote_data": record["remote_data"],
    })
}

/// Resuming from every intermediate checkpoint ends in the same store as an uninterrupted
/// run: the read is stopped at request k of the initial sync, for every k, then resumed.
pub async fn resuming_from_every_checkpoint_ends_in_the_same_store(
    subject: &dyn Subject,
    backend: Backend,
) {
    let bench = Bench::start(subject, backend, 3, None).await;
    if !bench.source.through_proxy() {
        skipped_without_proxy("faults at every request");
        bench.finish().await;
        return;
    }
    let source = &bench.source;
    let objects = [source.master(), source.transactional()];
    for n in 0..8 {
        for object in objects {
            source
                .create(object, &marker("record", n), ChangeTime::Now)
                .await;
        }
    }
    // The credential check at connect time makes the first requests; count them, so that the
    // faults below stop the initial sync, not the connect.
    let credentials: Credentials = serde_json::from_value(bench.credentials()).unwrap();
    let client = subject.connector().open(&credentials).unwrap();
    bench.proxy.forget();
    client.check().await.expect("the credential check passes");
    let check_requests = bench.proxy.seen().len() as u32;
    bench.proxy.forget();
    let (reference, _) = bench.connect(30).await;
    let requests = bench.proxy.seen().len() as u32;
    assert!(
        requests > 4,
        "the initial sync made only {requests} requests"
    );
    let mut expected = BTreeMap::new();
    for object in objects {
        let stored = bench.stored(&reference, object).await;
        expected.insert(
            object,
            stored
                .iter()
                .map(|(id, record)| (id.clone(), content(record)))
                .collect::<BTreeMap<_, _>>(),
        );
    }

    // Every request after the check is a page or an id listing of the initial sync. A 400 is
    // not retried: it stops that stream where it is.
    for k in check_requests..requests {
        bench.proxy.forget();
        bench.proxy.push(
            Rule::next(
                Fault::Status {
                    status: 400,
                    retry_after: None,
                },
                1,
            )
            .after(k),
        );
        let (id, _) = bench.connect(30).await;
        bench.proxy.clear();
        let run = bench.sync(&id).await;
        assert_eq!(
            run["status"], "succeeded",
            "resume after request {k}: {run}"
        );
        for object in objects {
            let stored: BTreeMap<String, Value> = bench
                .stored(&id, object)
                .await
                .iter()
                .map(|(id, record)| (id.clone(), content(record)))
                .collect();
            assert_eq!(
                &stored, &expected[&object],
                "{object} differs after stopping at request {k} and resuming"
            );
        }
    }
    bench.finish().await;
}

/// A watermark in the future yields zero records and no error.
pub async fn a_watermark_in_the_future_yields_nothing(subject: &dyn Subject, backend: Backend) {
    let bench = Bench::start(subject, backend, 50, None).await;
    let source = &bench.source;
    for n in 0..3 {
        source
            .create(source.transactional(), &marker("order", n), ChangeTime::Now)
            .await;
    }
    let connector = subject.connector();
    let credentials: Credentials = serde_json::from_value(bench.credentials()).unwrap();
    let client = connector.open(&credentials).unwrap();
    for support in &connector.system().objects {
        let mut page = None;
        loop {
            let answer = client
                .read_page(&PageRequest {
                    connection_id: "future".to_owned(),
                    object: support.object,
                    since: Some(Utc::now() + ChronoDuration::days(2)),
                    page,
                    page_size: 50,
                })
                .await
                .unwrap_or_else(|err| {
                    panic!("{}: a future watermark failed: {err}", support.object)
                });
            let changed: Vec<_> = answer
                .records
                .iter()
                .filter(|record| record.remote_updated_at.is_some())
                .collect();
            assert!(
                changed.is_empty(),
                "{}: a future watermark returned changed records: {changed:?}",
                support.object
            );
            match answer.next_page {
                Some(next) => page = Some(next),
                None => break,
            }
        }
    }
    bench.finish().await;
}

/// More records sharing one change time than fit on a page all arrive, initially and
/// incrementally.
pub async fn ties_larger_than_a_page_all_arrive(subject: &dyn Subject, backend: Backend) {
    let bench = Bench::start(subject, backend, 5, None).await;
    let source = &bench.source;
    let object = source.transactional();
    let shared = Utc::now().trunc_subsecs(0) - ChronoDuration::hours(2);
    for n in 0..17 {
        source
            .create(object, &marker("tied", n), ChangeTime::At(shared))
            .await;
    }
    let (id, _) = bench.connect(30).await;
    bench.assert_matches_source(&id, object).await;

    let later = Utc::now().trunc_subsecs(0) + ChronoDuration::seconds(1);
    for n in 0..13 {
        source
            .create(object, &marker("tied later", n), ChangeTime::At(later))
            .await;
    }
    let run = bench.sync(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["records_created"], 13, "{run}");
    bench.assert_matches_source(&id, object).await;
    bench.finish().await;
}

/// Records updated while a listing is in progress are not skipped: records on pages already
/// read and on pages not read yet change between two page requests.
pub async fn updates_during_a_listing_are_not_skipped(subject: &dyn Subject, backend: Backend) {
    let bench = Bench::start(subject, backend, 3, None).await;
    let source = bench.source.clone();
    let mut ids = Vec::new();
    for object in [source.master(), source.transactional()] {
        for n in 0..15 {
            ids.push((
                object,
                source
                    .create(object, &marker("before", n), ChangeTime::Now)
                    .await,
            ));
        }
    }
    // On the third request of each object's reading, change the first, the middle and the
    // last record of that object.
    let hits: Arc<std::sync::Mutex<HashMap<ObjectType, u32>>> = Arc::default();
    let hook_source = source.clone();
    let hook_ids = ids.clone();
    bench.proxy.hook(Some(Arc::new(move |_, target: String| {
        let source = hook_source.clone();
        let ids = hook_ids.clone();
        let hits = hits.clone();
        async move {
            for object in [source.master(), source.transactional()] {
                if !target.contains(&source.request_hint(object)) {
                    continue;
                }
                let count = {
                    let mut hits = hits.lock().unwrap();
                    let count = hits.entry(object).or_default();
                    *count += 1;
                    *count
                };
                if count == 3 {
                    let of_object: Vec<&String> = ids
                        .iter()
                        .filter(|(o, _)| *o == object)
                        .map(|(_, id)| id)
                        .collect();
                    for (n, index) in [0, of_object.len() / 2, of_object.len() - 1]
                        .into_iter()
                        .enumerate()
                    {
                        source
                            .update(
                                object,
                                of_object[index],
                                &marker("during", n),
                                ChangeTime::Now,
                            )
                            .await;
                    }
                }
            }
        }
        .boxed()
    })));
    let (id, _) = bench.connect(30).await;
    bench.proxy.hook(None);
    for object in [source.master(), source.transactional()] {
        let stored = bench.stored(&id, object).await;
        assert_eq!(stored.len(), 15, "{object}: a record was skipped");
    }
    bench.sync(&id).await;
    for object in [source.master(), source.transactional()] {
        bench.assert_matches_source(&id, object).await;
    }
    bench.finish().await;
}

/// Deletions in the source are found (tombstones or reconciliation after a complete read), and
/// nothing is marked deleted after a failed or partial run.
pub async fn deletions_are_found_and_never_invented_after_a_failed_run(
    subject: &dyn Subject,
    backend: Backend,
) {
    let bench = Bench::start(subject, backend, 3, None).await;
    let source = &bench.source;
    let objects = [source.master(), source.transactional()];
    let mut created = Vec::new();
    for n in 0..8 {
        for object in objects {
            created.push((
                object,
                source
                    .create(object, &marker("record", n), ChangeTime::Now)
                    .await,
            ));
        }
    }
    let (id, _) = bench.connect(30).await;
    for (object, remote_id) in created.iter().step_by(3) {
        source.delete(*object, remote_id).await;
    }
    // A run whose reads fail part-way marks nothing deleted (the failure is injected by the
    // proxy, so a source it does not stand in front of skips this half).
    if source.through_proxy() {
        let stored_before: Vec<_> =
            futures::future::join_all(objects.iter().map(|object| bench.stored(&id, *object)))
                .await;

        for object in objects {
            bench.proxy.push(
                Rule::next(
                    Fault::Status {
                        status: 400,
                        retry_after: None,
                    },
                    1,
                )
                .after(1)
                .on(&source.request_hint(object)),
            );
        }
        let run = bench.sync(&id).await;
        assert_eq!(run["status"], "failed", "{run}");
        assert_eq!(run["records_deleted"], 0, "{run}");
        let stored_after: Vec<_> =
            futures::future::join_all(objects.iter().map(|object| bench.stored(&id, *object)))
                .await;
        for (before, after) in stored_before.iter().zip(&stored_after) {
            for (remote_id, record) in after {
                assert_eq!(
                    record["remote_deleted_at"], before[remote_id]["remote_deleted_at"],
                    "{remote_id} was marked deleted by a failed run"
                );
            }
        }
    } else {
        skipped_without_proxy("a failed run");
    }

    // A complete run finds them.
    bench.proxy.clear();
    let run = bench.sync(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    for object in objects {
        bench.assert_matches_source(&id, object).await;
    }
    bench.finish().await;
}

/// Seconds between the faulted request at `index` of `seen` and the next request.
fn gap_after(seen: &[crate::proxy::Seen], index: usize) -> f64 {
    seen[index + 1]
        .at
        .duration_since(seen[index].at)
        .as_secs_f64()
}

/// Index of the first request the proxy answered with `fault`.
fn first_with(seen: &[crate::proxy::Seen], fault: &Fault) -> usize {
    seen.iter()
        .position(|seen| seen.fault.as_ref() == Some(fault))
        .unwrap_or_else(|| panic!("the proxy never injected {fault:?}"))
}

/// 429 and 503 with `Retry-After` as seconds or as an HTTP date are waited out exactly that
/// long; a wait beyond the bound fails the run at once and keeps the watermark.
pub async fn retry_after_is_honoured_in_both_forms_and_bounded(
    subject: &dyn Subject,
    backend: Backend,
) {
    let bench = Bench::start(subject, backend, 50, None).await;
    if !bench.source.through_proxy() {
        skipped_without_proxy("429 and 503 answers");
        bench.finish().await;
        return;
    }
    let source = &bench.source;
    let object = source.transactional();
    source.create(object, "first", ChangeTime::Now).await;
    let (id, _) = bench.connect(30).await;

    let seconds = Fault::Status {
        status: 429,
        retry_after: Some(RetryAfter::Seconds(2)),
    };
    let date = Fault::Status {
        status: 503,
        retry_after: Some(RetryAfter::HttpDate(3)),
    };
    for fault in [seconds.clone(), date.clone()] {
        source.create(object, "more", ChangeTime::Now).await;
        bench.proxy.forget();
        bench
            .proxy
            .push(Rule::next(fault.clone(), 1).on(&source.request_hint(object)));
        let run = bench.sync(&id).await;
        assert_eq!(run["status"], "succeeded", "{fault:?}: {run}");
        let seen = bench.proxy.seen();
        let index = first_with(&seen, &fault);
        let gap = gap_after(&seen, index);
        let (low, high) = if fault == seconds {
            (2.0, 3.5)
        } else {
            // An HTTP date has whole seconds: three seconds ahead, floored, is 2 to 3 s away.
            (1.95, 4.0)
        };
        assert!(
            gap >= low && gap <= high,
            "{fault:?}: the retry came {gap:.3} s later, not within [{low}, {high}]"
        );
    }
    bench.assert_matches_source(&id, object).await;

    // Longer than the policy's bound: not waited, the run fails and the watermark stays.
    let before = bench.stream(&id, object).await;
    source.create(object, "late", ChangeTime::Now).await;
    bench.proxy.push(
        Rule::next(
            Fault::Status {
                status: 429,
                retry_after: Some(RetryAfter::Seconds(3600)),
            },
            1,
        )
        .on(&source.request_hint(object)),
    );
    let started = std::time::Instant::now();
    let run = bench.sync(&id).await;
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(run["status"], "failed", "{run}");
    let stream = bench.stream(&id, object).await;
    assert_eq!(stream["state"], "failed", "{stream}");
    assert!(
        stream["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("rate limit")),
        "{stream}"
    );
    assert_eq!(stream["watermark"], before["watermark"]);
    bench.finish().await;
}

/// 5xx answers, reset connections and timeouts are retried with backoff a bounded number of
/// times: within the bound the run succeeds, beyond it the run fails.
pub async fn transient_faults_are_retried_a_bounded_number_of_times(
    subject: &dyn Subject,
    backend: Backend,
) {
    let bench = Bench::start(subject, backend, 50, None).await;
    if !bench.source.through_proxy() {
        skipped_without_proxy("5xx answers, resets and stalls");
        bench.finish().await;
        return;
    }
    let source = &bench.source;
    let object = source.transactional();
    source.create(object, "first", ChangeTime::Now).await;
    let (id, _) = bench.connect(30).await;
    let policy = harness_policy();
    let server_error = Fault::Status {
        status: 500,
        retry_after: None,
    };
    let faults = [
        (server_error.clone(), 3),
        (
            Fault::Status {
                status: 502,
                retry_after: None,
            },
            1,
        ),
        (Fault::Reset, 2),
        (
            Fault::Stall(policy.request_timeout + Duration::from_secs(1)),
            1,
        ),
    ];
    for (n, (fault, times)) in faults.iter().enumerate() {
        source
            .create(object, &marker("more", n), ChangeTime::Now)
            .await;
        bench.proxy.forget();
        bench
            .proxy
            .push(Rule::next(fault.clone(), *times).on(&source.request_hint(object)));
        let run = bench.sync(&id).await;
        assert_eq!(run["status"], "succeeded", "{fault:?} x{times}: {run}");
        let seen = bench.proxy.seen();
        let first = first_with(&seen, fault);
        // Backoff: no retry comes sooner than the policy's first delay.
        for index in first..first + *times as usize {
            let gap = gap_after(&seen, index);
            assert!(
                gap >= policy.min_delay.as_secs_f64() * 0.5,
                "{fault:?}: a retry came after {gap:.3} s"
            );
        }
        bench.assert_matches_source(&id, object).await;
    }

    // One more failure than the policy retries: the request is tried exactly 1 + max_retries
    // times, then the run fails and keeps the watermark.
    let before = bench.stream(&id, object).await;
    source.create(object, "late", ChangeTime::Now).await;
    bench.proxy.forget();
    let attempts = policy.max_retries as u32 + 1;
    bench
        .proxy
        .push(Rule::next(server_error.clone(), attempts).on(&source.request_hint(object)));
    let run = bench.sync(&id).await;
    assert_eq!(run["status"], "failed", "{run}");
    let faulted = bench
        .proxy
        .seen()
        .iter()
        .filter(|seen| seen.fault.is_some())
        .count();
    assert_eq!(faulted as u32, attempts);
    assert_eq!(
        bench.stream(&id, object).await["watermark"],
        before["watermark"]
    );
    bench.proxy.clear();
    bench.sync(&id).await;
    bench.assert_matches_source(&id, object).await;
    bench.finish().await;
}

/// A truncated body or an answer that is not JSON fails the run cleanly: the last good
/// watermark is kept and the stream says why; the next run reads what was missed.
pub async fn malformed_answers_fail_the_run_and_keep_the_watermark(
    subject: &dyn Subject,
    backend: Backend,
) {
    let bench = Bench::start(subject, backend, 50, None).await;
    if !bench.source.through_proxy() {
        skipped_without_proxy("truncated and non-JSON answers");
        bench.finish().await;
        return;
    }
    let source = &bench.source;
    let object = source.transactional();
    source.create(object, "first", ChangeTime::Now).await;
    let (id, _) = bench.connect(30).await;
    for fault in [Fault::Truncate, Fault::NotJson] {
        let before = bench.stream(&id, object).await;
        source
            .create(object, "missed at first", ChangeTime::Now)
            .await;
        bench
            .proxy
            .push(Rule::next(fault.clone(), 1).on(&source.request_hint(object)));
        let run = bench.sync(&id).await;
        assert_eq!(run["status"], "failed", "{fault:?}: {run}");
        let stream = bench.stream(&id, object).await;
        assert_eq!(stream["state"], "failed", "{stream}");
        assert!(
            stream["last_error"]
                .as_str()
                .is_some_and(|error| error.contains("JSON")),
            "{fault:?}: {stream}"
        );
        assert_eq!(stream["watermark"], before["watermark"], "{fault:?}");
        assert_eq!(stream["record_count"], before["record_count"], "{fault:?}");

        let run = bench.sync(&id).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        bench.assert_matches_source(&id, object).await;
        assert!(bench.stream(&id, object).await["last_error"].is_null());
    }
    bench.finish().await;
}

/// One record that cannot be read does not block the others: they are stored, the bad one is
/// named on the stream, and it arrives once it is readable and changes.
pub async fn one_bad_record_is_reported_and_the_rest_stored(
    subject: &dyn Subject,
    backend: Backend,
) {
    let bench = Bench::start(subject, backend, 3, None).await;
    let source = &bench.source;
    let object = source.transactional();
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(
            source
                .create(object, &marker("order", n), ChangeTime::Now)
                .await,
        );
    }
    let bad = ids[3].clone();
    if !source
        .fault(SourceFault::Corrupt(vec![(object, bad.clone())]))
        .await
    {
        eprintln!("skipped: this source cannot serve a corrupt record");
        bench.finish().await;
        return;
    }
    let (id, _) = bench.connect(30).await;
    let stored = bench.stored(&id, object).await;
    assert_eq!(stored.len(), 6, "the readable records are stored");
    assert!(!stored.contains_key(&bad));
    let stream = bench.stream(&id, object).await;
    assert_eq!(stream["state"], "idle", "{stream}");
    let error = stream["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains("1 record(s) could not be read"),
        "the bad record is reported: {stream}"
    );

    source.fault(SourceFault::Corrupt(Vec::new())).await;
    source
        .update(object, &bad, "order fixed", ChangeTime::Now)
        .await;
    let run = bench.sync(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    bench.assert_matches_source(&id, object).await;
    assert!(bench.stream(&id, object).await["last_error"].is_null());
    bench.finish().await;
}

/// Credentials revoked in the middle of a run make the connection `reauth_required`, and
/// nothing stored is lost.
pub async fn revoked_credentials_mid_run_require_reauth_and_lose_nothing(
    subject: &dyn Subject,
    backend: Backend,
) {
    let bench = Bench::start(subject, backend, 3, None).await;
    if !bench.source.through_proxy() {
        skipped_without_proxy("revocations between two requests");
        bench.finish().await;
        return;
    }
    let source = bench.source.clone();
    let object = source.transactional();
    for n in 0..12 {
        source
            .create(object, &marker("order", n), ChangeTime::Now)
            .await;
    }
    let revoked = Arc::new(AtomicBool::new(false));
    let (hook_source, hook_revoked) = (source.clone(), revoked.clone());
    let hint = source.request_hint(object);
    let pages = Arc::new(std::sync::atomic::AtomicU32::new(0));
    bench.proxy.hook(Some(Arc::new(move |_, target: String| {
        let (source, revoked, pages, hint) = (
            hook_source.clone(),
            hook_revoked.clone(),
            pages.clone(),
            hint.clone(),
        );
        async move {
            if target.contains(&hint)
                && pages.fetch_add(1, Ordering::SeqCst) == 2
                && !revoked.swap(true, Ordering::SeqCst)
            {
                assert!(source.fault(SourceFault::RevokeCredentials(true)).await);
            }
        }
        .boxed()
    })));
    let (id, token) = bench.connect(30).await;
    bench.proxy.hook(None);
    assert!(revoked.load(Ordering::SeqCst), "the revocation never fired");
    let connection = bench
        .world
        .admin_get(&format!("/v1/connections/{id}"))
        .await;
    assert_eq!(connection["status"], "reauth_required", "{connection}");
    let kept = bench.stored(&id, object).await;
    assert!(
        !kept.is_empty(),
        "pages stored before the revocation are kept"
    );

    // The data stays readable by the operator; the connection's own token is refused with
    // the reason, and nothing is lost by trying to sync.
    let reply = bench
        .world
        .call(
            Some(&token),
            Method::GET,
            &format!("/v1/{}", object.slug()),
            None,
        )
        .await;
    assert!(!reply.status.is_success(), "{}", reply.body);
    assert_eq!(bench.stored(&id, object).await.len(), kept.len());
    bench.finish().await;
}

/// A session that ends in the middle of a run is renewed once, even when several requests
/// meet the end at the same time, and the run goes on.
pub async fn an_expired_session_is_renewed_once(subject: &dyn Subject, backend: Backend) {
    let bench = Bench::start(subject, backend, 3, None).await;
    let source = bench.source.clone();
    let Some(credentials) = source.session_credentials(&bench.proxy.route(&source.base_url()))
    else {
        eprintln!("skipped: this system has no session authentication");
        bench.finish().await;
        return;
    };
    let object = source.transactional();
    for n in 0..9 {
        source
            .create(object, &marker("order", n), ChangeTime::Now)
            .await;
    }

    // Several requests at once on one client after the session ended: one new login.
    let connector = subject.connector();
    let client = connector
        .open(&serde_json::from_value(credentials.clone()).unwrap())
        .unwrap();
    let request = |n: usize| PageRequest {
        connection_id: format!("session-{n}"),
        object,
        since: None,
        page: None,
        page_size: 3,
    };
    client.read_page(&request(0)).await.unwrap();
    let logins = source.logins().await.expect("the source counts logins");
    assert!(source.fault(SourceFault::ExpireSessions).await);
    let requests: Vec<PageRequest> = (1..=4).map(request).collect();
    let pages = futures::future::join_all(requests.iter().map(|r| client.read_page(r))).await;
    for page in pages {
        page.unwrap();
    }
    assert_eq!(
        source.logins().await,
        Some(logins + 1),
        "concurrent requests renew the session once"
    );

    // Through the engine: the session ends between two pages of the initial sync.
    let expired = Arc::new(AtomicBool::new(false));
    let (hook_source, hook_expired) = (source.clone(), expired.clone());
    let hint = source.request_hint(object);
    bench.proxy.hook(Some(Arc::new(move |_, target: String| {
        let (source, expired, hint) = (hook_source.clone(), hook_expired.clone(), hint.clone());
        async move {
            if target.contains(&hint) && !expired.swap(true, Ordering::SeqCst) {
                source.fault(SourceFault::ExpireSessions).await;
            }
        }
        .boxed()
    })));
    let (id, _) = bench.connect_with(credentials, 30).await;
    bench.proxy.hook(None);
    let connection = bench
        .world
        .admin_get(&format!("/v1/connections/{id}"))
        .await;
    assert_eq!(connection["status"], "active", "{connection}");
    crate::world::assert_all_idle(&connection);
    bench.assert_matches_source(&id, object).await;
    bench.finish().await;
}

/// A source whose clock runs minutes ahead of or behind Millrace's loses nothing.
pub async fn source_clock_skew_loses_nothing(subject: &dyn Subject, backend: Backend) {
    for offset in [600_i64, -600] {
        let bench = Bench::start(subject, backend, 3, None).await;
        let source = &bench.source;
        if !source.fault(SourceFault::ClockOffset(offset)).await {
            eprintln!("skipped: this source cannot skew its clock");
            bench.finish().await;
            return;
        }
        let object = source.transactional();
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(
                source
                    .create(object, &marker("order", n), ChangeTime::Now)
                    .await,
            );
        }
        let (id, _) = bench.connect(30).await;
        bench.assert_matches_source(&id, object).await;
        for (round, remote_id) in ids.iter().take(3).enumerate() {
            source
                .create(object, &marker("new", round), ChangeTime::Now)
                .await;
            source
                .update(
                    object,
                    remote_id,
                    &marker("changed", round),
                    ChangeTime::Now,
                )
                .await;
            let run = bench.sync(&id).await;
            assert_eq!(run["status"], "succeeded", "offset {offset}: {run}");
            bench.assert_matches_source(&id, object).await;
        }
        bench.finish().await;
    }
}

/// Records whose change time is null are synced, initially and later.
pub async fn null_change_times_are_synced(subject: &dyn Subject, backend: Backend) {
    let bench = Bench::start(subject, backend, 3, None).await;
    let source = &bench.source;
    let object = source.transactional();
    let mut nulls = Vec::new();
    for n in 0..4 {
        nulls.push(
            source
                .create(object, &marker("undated", n), ChangeTime::Null)
                .await,
        );
        source
            .create(object, &marker("dated", n), ChangeTime::Now)
            .await;
    }
    let (id, _) = bench.connect(30).await;
    bench.assert_matches_source(&id, object).await;

    source
        .create(object, "undated later", ChangeTime::Null)
        .await;
    source
        .update(object, &nulls[0], "undated and changed", ChangeTime::Null)
        .await;
    let run = bench.sync(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["records_created"], 1, "{run}");
    assert_eq!(run["records_updated"], 1, "{run}");
    bench.assert_matches_source(&id, object).await;
    bench.finish().await;
}

/// Sub-second change times are neither truncated nor rounded so that a record is skipped;
/// naive local times, including those of a daylight-saving change in the source's zone, lose
/// nothing.
pub async fn sub_second_and_local_times_lose_nothing(subject: &dyn Subject, backend: Backend) {
    let zone = "America/New_York";
    let bench = Bench::start(subject, backend, 2, Some(zone)).await;
    let source = &bench.source;
    let object = source.transactional();
    let second = Utc::now().trunc_subsecs(0) - ChronoDuration::minutes(30);
    let at = |millis: i64| ChangeTime::At(second + ChronoDuration::milliseconds(millis));
    source.create(object, "at .100", at(100)).await;
    source.create(object, "at .900", at(900)).await;
    // The autumn change: 01:30 happens twice; the spring change: 02:30 never happens.
    let year = Utc::now().year();
    let autumn = local_time(year, 11, 1, 1, 30);
    let spring = local_time(year, 3, 8, 2, 30);
    source
        .create(object, "autumn local", ChangeTime::Local(autumn))
        .await;
    source
        .create(object, "spring local", ChangeTime::Local(spring))
        .await;
    let (id, _) = bench.connect(400).await;
    bench.assert_matches_source(&id, object).await;

    // Later in the same second as the watermark, and earlier in it: both arrive.
    source.create(object, "at .950", at(950)).await;
    source.create(object, "at .999", at(999)).await;
    source
        .create(object, "at .500, committed late", at(500))
        .await;
    let run = bench.sync(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["records_created"], 3, "{run}");
    bench.assert_matches_source(&id, object).await;

    // Local wall-clock times of now, as a source in that zone stamps them.
    let tz: chrono_tz::Tz = zone.parse().expect("a known zone");
    let local_now = Utc::now().with_timezone(&tz).naive_local();
    source
        .create(object, "local now", ChangeTime::Local(local_now))
        .await;
    let run = bench.sync(&id).await;
    assert_eq!(run["records_created"], 1, "{run}");
    bench.assert_matches_source(&id, object).await;
    bench.finish().await;
}

fn local_time(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> chrono::NaiveDateTime {
    NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|date| date.and_hms_opt(hour, minute, 0))
        .expect("a valid date")
}

/// Declares every check as a test, once on SQLite and once on PostgreSQL, for the subject
/// `$subject` (an expression building a `Subject`). Use it in a connector's integration tests:
///
/// ```ignore
/// millrace_compliance::compliance_tests!(my_connector::compliance::subject());
/// ```
#[macro_export]
macro_rules! compliance_tests {
    ($subject:expr) => {
        $crate::compliance_tests!(@backend sqlite, $crate::world::Backend::Sqlite, $subject);
        $crate::compliance_tests!(@backend postgres, $crate::world::Backend::Postgres, $subject);
    };
    (@backend $module:ident, $backend:expr, $subject:expr) => {
        mod $module {
            $crate::compliance_tests!(@checks $backend, $subject;
                initial_sync_is_a_complete_snapshot,
                an_unchanged_source_stores_and_announces_nothing,
                resuming_from_every_checkpoint_ends_in_the_same_store,
                a_watermark_in_the_future_yields_nothing,
                ties_larger_than_a_page_all_arrive,
                updates_during_a_listing_are_not_skipped,
                deletions_are_found_and_never_invented_after_a_failed_run,
                retry_after_is_honoured_in_both_forms_and_bounded,
                transient_faults_are_retried_a_bounded_number_of_times,
                malformed_answers_fail_the_run_and_keep_the_watermark,
                one_bad_record_is_reported_and_the_rest_stored,
                revoked_credentials_mid_run_require_reauth_and_lose_nothing,
                an_expired_session_is_renewed_once,
                source_clock_skew_loses_nothing,
                null_change_times_are_synced,
                sub_second_and_local_times_lose_nothing,
            );
        }
    };
    (@checks $backend:expr, $subject:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let subject = $subject;
                $crate::checks::$check(&subject, $backend).await;
            }
        )*
    };
}
