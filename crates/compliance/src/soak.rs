//! The seeded, model-based soak: a random workload of creates, updates and deletes in the
//! source, interleaved with syncs, crashes of Millrace and faults; then one last sync, after
//! which the store must equal the source exactly and a client that polled the change cursor
//! throughout must have seen every change.
//!
//! The same seed gives the same workload; the timing of syncs, crashes and faults against it
//! varies with the machine, which is the point.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Duration as ChronoDuration, SubsecRound, Utc};
use millrace_model::ObjectType;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::checks::Bench;
use crate::proxy::Chaos;
use crate::subject::{ChangeTime, SourceFault, Subject, TestSource};
use crate::world::Backend;

/// How long and with what a soak runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub duration: Duration,
    pub seed: u64,
    pub backend: Backend,
}

/// What a soak did and found.
#[derive(Debug, Default)]
pub struct SoakReport {
    pub iterations: u64,
    /// Operations by kind: creates, updates, deletes, syncs, crashes.
    pub operations: BTreeMap<String, u64>,
    /// Faults injected by kind, transport faults from the proxy and source faults.
    pub faults: BTreeMap<String, u64>,
    /// Every difference found at the end; empty when the store equals the source.
    pub mismatches: Vec<String>,
    /// Changes the polling client read through the cursor.
    pub changes_polled: u64,
}

impl SoakReport {
    fn count(&mut self, kind: &str) {
        *self.operations.entry(kind.to_owned()).or_default() += 1;
    }

    /// The report as printed by `millrace soak`, ending with `mismatches: N`.
    pub fn render(&self) -> String {
        let mut text = format!("iterations: {}\n", self.iterations);
        let total: u64 = self.operations.values().sum();
        text.push_str(&format!("operations: {total}\n"));
        for (kind, count) in &self.operations {
            text.push_str(&format!("  {kind}: {count}\n"));
        }
        let faults: u64 = self.faults.values().sum();
        text.push_str(&format!("faults injected: {faults}\n"));
        for (kind, count) in &self.faults {
            text.push_str(&format!("  {kind}: {count}\n"));
        }
        text.push_str(&format!(
            "changes seen by the polling client: {}\n",
            self.changes_polled
        ));
        for mismatch in self.mismatches.iter().take(20) {
            text.push_str(&format!("mismatch: {mismatch}\n"));
        }
        text.push_str(&format!("mismatches: {}", self.mismatches.len()));
        text
    }
}

/// What the polling client knows of one record: its marker and whether it is deleted.
type Seen = HashMap<String, (Option<String>, bool)>;

/// A short soak for a connector's own test suite: runs `soak` for `duration`, prints the report
/// and fails unless the workload did something (creates and syncs) and ended with no mismatch.
pub async fn assert_short_soak(
    subject: &dyn Subject,
    backend: Backend,
    seed: u64,
    duration: Duration,
) {
    let report = soak(
        subject,
        &SoakOptions {
            duration,
            seed,
            backend,
        },
    )
    .await;
    println!("{}", report.render());
    assert!(report.iterations > 0, "{report:?}");
    assert!(
        report.operations.get("create").copied().unwrap_or(0) > 0,
        "{report:?}"
    );
    assert!(
        report
            .operations
            .keys()
            .any(|kind| kind.starts_with("sync")),
        "{report:?}"
    );
    assert!(report.mismatches.is_empty(), "{}", report.render());
}

/// Runs a soak of `subject` and reports it.
pub async fn soak(subject: &dyn Subject, options: &SoakOptions) -> SoakReport {
    let mut bench = Bench::start(subject, options.backend, 7, None).await;
    // A short lease, so that a crashed run's lease expires quickly and the next process
    // resumes it.
    bench
        .world
        .reconfigure(|config| config.lease = Duration::from_secs(2))
        .await;
    let mut report = SoakReport::default();
    let mut rng = StdRng::seed_from_u64(options.seed);
    let source = bench.source.clone();
    let objects = [source.transactional(), source.master()];
    let credentials = source
        .session_credentials(&bench.proxy.route(&source.base_url()))
        .unwrap_or_else(|| bench.credentials());

    // The model: the live records the workload made, with their markers.
    let mut model: HashMap<ObjectType, BTreeMap<String, String>> = HashMap::new();
    let mut next_marker = 0_u64;
    for object in objects {
        for _ in 0..10 {
            next_marker += 1;
            let marker = format!("m{next_marker}");
            let id = source.create(object, &marker, ChangeTime::Now).await;
            model.entry(object).or_default().insert(id, marker);
        }
    }
    let (id, token) = bench.connect_with(credentials, 30).await;

    // The polling client: reads each object's changes by cursor, all the time.
    let base = Arc::new(Mutex::new(bench.world.base.clone()));
    let seen: Arc<Mutex<HashMap<ObjectType, Seen>>> = Arc::default();
    let polled = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop_polling = CancellationToken::new();
    let poller = tokio::spawn(poll_changes(
        source.clone(),
        objects.to_vec(),
        token.clone(),
        base.clone(),
        seen.clone(),
        polled.clone(),
        stop_polling.clone(),
    ));

    bench.proxy.chaos(Chaos {
        seed: options.seed,
        reset: 0.02,
        unavailable: 0.01,
        rate_limited: 0.01,
        server_error: 0.02,
        slow: 0.05,
    });

    let deadline = Instant::now() + options.duration;
    while Instant::now() < deadline {
        report.iterations += 1;
        for _ in 0..rng.gen_range(1..8) {
            let object = *objects.choose(&mut rng).unwrap();
            let records = model.entry(object).or_default();
            let changed = random_change_time(&mut rng);
            let roll: f64 = rng.gen();
            if roll < 0.45 || records.is_empty() {
                next_marker += 1;
                let marker = format!("m{next_marker}");
                let id = source.create(object, &marker, changed).await;
                records.insert(id, marker);
                report.count("create");
            } else if roll < 0.85 {
                let ids: Vec<String> = records.keys().cloned().collect();
                let id = ids.choose(&mut rng).unwrap().clone();
                next_marker += 1;
                let marker = format!("m{next_marker}");
                source.update(object, &id, &marker, changed).await;
                records.insert(id, marker);
                report.count("update");
            } else {
                let ids: Vec<String> = records.keys().cloned().collect();
                let id = ids.choose(&mut rng).unwrap().clone();
                source.delete(object, &id).await;
                records.remove(&id);
                report.count("delete");
            }
        }

        let action: f64 = rng.gen();
        if action < 0.35 {
            bench.world.sync_and_wait(&id).await;
            report.count("sync (waited for)");
        } else if action < 0.55 {
            request_sync(&bench, &id).await;
            report.count("sync (in the background)");
        } else if action < 0.65 {
            // Kill Millrace in the middle of a sync, then start it again.
            request_sync(&bench, &id).await;
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..400))).await;
            bench.world.crash().await;
            bench.world.boot_again().await;
            *base.lock().unwrap() = bench.world.base.clone();
            report.count("crash and restart");
        } else if action < 0.7 && source.fault(SourceFault::ExpireSessions).await {
            *report
                .faults
                .entry("session_expired".to_owned())
                .or_default() += 1;
        }
    }

    // Quiet: no faults, then syncs until two in a row succeed, the last one complete.
    bench.proxy.clear();
    for _ in 0..5 {
        let run = bench.world.sync_and_wait(&id).await;
        if run["status"] == "succeeded" {
            let run = bench.world.sync_and_wait(&id).await;
            if run["status"] == "succeeded" {
                break;
            }
        }
    }
    // Let the poller catch up, then stop it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_polling.cancel();
    let _ = poller.await;

    for (kind, count) in bench.proxy.injected() {
        report.faults.insert(kind.to_owned(), count);
    }
    report.changes_polled = polled.load(std::sync::atomic::Ordering::Relaxed);

    for object in objects {
        let truth = source.truth(object).await;
        let expected = model.get(&object).cloned().unwrap_or_default();
        // The model and the source agree (the harness itself is right).
        let truth_map: BTreeMap<String, String> = truth
            .iter()
            .map(|row| {
                (
                    row.remote_id.clone(),
                    row.marker.clone().unwrap_or_default(),
                )
            })
            .collect();
        if truth_map != expected {
            report.mismatches.push(format!(
                "{object}: the source holds {} records, the model {}",
                truth_map.len(),
                expected.len()
            ));
        }
        let stored = bench.stored(&id, object).await;
        compare_store(
            &mut report.mismatches,
            object,
            &expected,
            &stored,
            source.as_ref(),
        );
        let seen = seen
            .lock()
            .unwrap()
            .get(&object)
            .cloned()
            .unwrap_or_default();
        compare_seen(&mut report.mismatches, object, &expected, &stored, &seen);
    }
    bench.finish().await;
    report
}

/// A change time for a workload write: mostly the source's clock, sometimes a time shared by
/// many records, a late commit within the last seconds, or none at all.
fn random_change_time(rng: &mut StdRng) -> ChangeTime {
    let roll: f64 = rng.gen();
    if roll < 0.7 {
        ChangeTime::Now
    } else if roll < 0.8 {
        ChangeTime::At(Utc::now().trunc_subsecs(0))
    } else if roll < 0.95 {
        ChangeTime::At(
            Utc::now().trunc_subsecs(3) - ChronoDuration::milliseconds(rng.gen_range(1..30_000)),
        )
    } else {
        ChangeTime::Null
    }
}

async fn request_sync(bench: &Bench, id: &str) {
    let _ = bench
        .world
        .admin(
            reqwest::Method::POST,
            &format!("/v1/connections/{id}/sync"),
            None,
        )
        .await;
}

/// Compares the store with the model: every live record once with its marker, every other
/// stored record marked deleted.
fn compare_store(
    mismatches: &mut Vec<String>,
    object: ObjectType,
    expected: &BTreeMap<String, String>,
    stored: &BTreeMap<String, Value>,
    source: &dyn TestSource,
) {
    for (remote_id, marker) in expected {
        match stored.get(remote_id) {
            None => mismatches.push(format!("{object} {remote_id}: missing from the store")),
            Some(record) if !record["remote_deleted_at"].is_null() => mismatches.push(format!(
                "{object} {remote_id}: live in the source, marked deleted in the store"
            )),
            Some(record) => {
                let got = source.marker_of(object, record);
                if got.as_deref() != Some(marker.as_str()) {
                    mismatches.push(format!(
                        "{object} {remote_id}: the store has {got:?}, the source {marker}"
                    ));
                }
            }
        }
    }
    for (remote_id, record) in stored {
        if !expected.contains_key(remote_id) && record["remote_deleted_at"].is_null() {
            mismatches.push(format!(
                "{object} {remote_id}: deleted in the source, live in the store"
            ));
        }
    }
}

/// Compares what the polling client saw last of each record with the final store.
fn compare_seen(
    mismatches: &mut Vec<String>,
    object: ObjectType,
    expected: &BTreeMap<String, String>,
    stored: &BTreeMap<String, Value>,
    seen: &Seen,
) {
    for (remote_id, marker) in expected {
        match seen.get(remote_id) {
            Some((Some(got), false)) if got == marker => {}
            other => mismatches.push(format!(
                "{object} {remote_id}: the polling client last saw {other:?}, the source has {marker}"
            )),
        }
    }
    for (remote_id, record) in stored {
        if !record["remote_deleted_at"].is_null()
            && seen.get(remote_id).is_some_and(|(_, deleted)| !deleted)
        {
            mismatches.push(format!(
                "{object} {remote_id}: the polling client never saw the deletion"
            ));
        }
    }
}

/// Polls each object's change cursor until stopped, keeping the last version of each record.
async fn poll_changes(
    source: Arc<dyn TestSource>,
    objects: Vec<ObjectType>,
    token: String,
    base: Arc<Mutex<String>>,
    seen: Arc<Mutex<HashMap<ObjectType, Seen>>>,
    polled: Arc<std::sync::atomic::AtomicU64>,
    stop: CancellationToken,
) {
    let http = reqwest::Client::new();
    let mut cursors: HashMap<ObjectType, Option<String>> = HashMap::new();
    loop {
        for object in &objects {
            loop {
                let base_url = base.lock().unwrap().clone();
                let mut url = reqwest::Url::parse(&format!("{base_url}/v1/{}", object.slug()))
                    .expect("a URL");
                url.query_pairs_mut()
                    .append_pair("limit", "200")
                    .append_pair("include_deleted", "true");
                if let Some(Some(cursor)) = cursors.get(object) {
                    url.query_pairs_mut().append_pair("cursor", cursor);
                }
                // Millrace may be down between a crash and its restart: try again later.
                let Ok(response) = http.get(url).bearer_auth(&token).send().await else {
                    break;
                };
                if !response.status().is_success() {
                    break;
                }
                let Ok(page) = response.json::<Value>().await else {
                    break;
                };
                let records = page["data"].as_array().cloned().unwrap_or_default();
                {
                    let mut seen = seen.lock().unwrap();
                    let seen = seen.entry(*object).or_default();
                    for record in &records {
                        let remote_id = record["remote_id"].as_str().unwrap_or_default();
                        let marker = source.marker_of(*object, record);
                        let deleted = !record["remote_deleted_at"].is_null();
                        seen.insert(remote_id.to_owned(), (marker, deleted));
                    }
                }
                polled.fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
                if let Some(next) = page["next_cursor"].as_str() {
                    cursors.insert(*object, Some(next.to_owned()));
                }
                if page["has_more"] != true {
                    break;
                }
            }
        }
        if stop.is_cancelled() {
            // One last full pass after the stop was asked for, so nothing committed is missed.
            return;
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}
