//! One sync run of one connection: its streams read page by page, checkpointed, reconciled.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use millrace_connector::{
    ConnectorError, Credentials, Page, PageRequest, RejectedRecord, Source, SourceRecord,
};
use millrace_model::{
    ids, ConnectionStatus, ObjectKind, ObjectType, RunKind, RunStatus, StreamState,
};
use millrace_store::{
    ApplyStats, Checkpoint, RecordWrite, RunOutcome, StoreError, StreamCounts, StreamRow,
};
use tokio_util::sync::CancellationToken;

use crate::{content_hash, Engine, SyncError};

/// Why a stream stopped before completing.
#[derive(Debug)]
enum StreamStop {
    /// Disconnected, data deleted, lease lost or process shutting down: stop quietly.
    Cancelled,
    /// The source refused the stored credentials: the connection needs reauthorisation.
    CredentialsRejected(String),
    /// Anything else: the stream fails, its checkpoint and watermark stay for the next run.
    Failed(String),
}

impl From<ConnectorError> for StreamStop {
    fn from(err: ConnectorError) -> Self {
        match err {
            ConnectorError::CredentialsRejected(detail) => StreamStop::CredentialsRejected(detail),
            other => StreamStop::Failed(other.to_string()),
        }
    }
}

impl From<StoreError> for StreamStop {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::ConnectionInactive(_) => StreamStop::Cancelled,
            other => StreamStop::Failed(format!("storing failed: {other}")),
        }
    }
}

/// Counts of one run, summed over its streams and kept per stream.
#[derive(Debug, Default)]
struct Totals {
    records_read: u64,
    stats: ApplyStats,
    records_deleted: u64,
    objects: BTreeMap<ObjectType, StreamCounts>,
}

impl Totals {
    fn add(&mut self, object: ObjectType, read: u64, stats: ApplyStats) {
        self.records_read += read;
        self.stats.created += stats.created;
        self.stats.updated += stats.updated;
        self.stats.unchanged += stats.unchanged;
        let counts = self.objects.entry(object).or_default();
        counts.read += read;
        counts.created += stats.created;
        counts.updated += stats.updated;
        counts.unchanged += stats.unchanged;
    }

    fn add_deleted(&mut self, object: ObjectType, deleted: u64) {
        self.records_deleted += deleted;
        self.objects.entry(object).or_default().deleted += deleted;
    }
}

/// What one run needs while it reads a connection.
struct RunScope<'a> {
    connection_id: &'a str,
    run_id: String,
    kind: RunKind,
    lookback_days: u32,
    source: Box<dyn Source>,
    overlap: ChronoDuration,
    deletes_reported: HashSet<ObjectType>,
    cancel: &'a CancellationToken,
}

impl Engine {
    /// Runs one sync of a connection this worker has claimed, then releases the lease.
    pub(crate) async fn run_claimed(self, connection_id: String) {
        let cancel = CancellationToken::new();
        self.inner
            .running
            .lock()
            .unwrap()
            .insert(connection_id.clone(), cancel.clone());

        if let Err(err) = self.run_connection(&connection_id, &cancel).await {
            tracing::error!(
                connection_id = %connection_id,
                error = %err,
                "sync run failed to start"
            );
        }

        // A run cancelled while its connection stays active (this process shutting down) did
        // not finish: it stays due, so the next worker resumes it from its checkpoint. A sync
        // asked for during the run is kept by the store as the earlier due time.
        let interrupted = cancel.is_cancelled();
        let next_sync_at = match self.inner.store.connection(&connection_id).await {
            Ok(Some(connection)) if connection.status == ConnectionStatus::Active => {
                let interval = ChronoDuration::seconds(connection.sync_interval_seconds.into());
                Some(if interrupted {
                    Utc::now()
                } else {
                    Utc::now() + interval
                })
            }
            _ => None,
        };
        let worker = &self.inner.worker_id;
        if let Err(err) = self
            .inner
            .store
            .release_lease(&connection_id, worker, next_sync_at)
            .await
        {
            tracing::error!(connection_id = %connection_id, error = %err, "releasing lease failed");
        }
        self.inner.running.lock().unwrap().remove(&connection_id);
    }

    async fn run_connection(&self, id: &str, cancel: &CancellationToken) -> Result<(), SyncError> {
        let store = &self.inner.store;
        let Some(connection) = store.connection(id).await? else {
            return Ok(());
        };
        if connection.status != ConnectionStatus::Active {
            return Ok(());
        }
        let connector = self.inner.registry.get(&connection.system).ok_or_else(|| {
            SyncError::UnknownSystem {
                system: connection.system.clone(),
                known: self.inner.registry.system_ids().join(", "),
            }
        })?;

        store
            .abandon_runs(id, "the worker running it stopped before it finished")
            .await?;
        let streams = store.streams(id).await?;
        let kind = if streams
            .iter()
            .any(|stream| stream.last_successful_sync_at.is_none())
        {
            RunKind::Initial
        } else {
            RunKind::Incremental
        };
        let asked_by_api = self.inner.requested.lock().unwrap().remove(id);
        let trigger = if streams.iter().any(|stream| stream.checkpoint.is_some()) {
            "resume"
        } else if asked_by_api {
            "api"
        } else if kind == RunKind::Initial {
            "connect"
        } else {
            "schedule"
        };
        let run_id = store.start_run(id, kind, trigger, Utc::now()).await?;
        let span = tracing::info_span!(
            "sync_run",
            connection_id = %id,
            system = %connection.system,
            run_id = %run_id
        );
        tracing::info!(parent: &span, ?kind, trigger, "sync run started");

        let source = match self.open_source(id, connector.as_ref()).await {
            Ok(source) => source,
            Err(message) => {
                tracing::warn!(parent: &span, error = %message, "sync run cannot open its source");
                // A stream a dead worker left `running` says why it is not going on.
                for stream in streams.iter().filter(|s| s.state == StreamState::Running) {
                    store
                        .set_stream_state(
                            id,
                            stream.object,
                            StreamState::Failed,
                            Some(Some(&message)),
                        )
                        .await?;
                }
                let outcome = outcome(RunStatus::Failed, &Totals::default(), Some(message));
                store.finish_run(&run_id, &outcome).await?;
                return Ok(());
            }
        };
        let system = connector.system();
        let scope = RunScope {
            connection_id: id,
            run_id: run_id.clone(),
            kind,
            lookback_days: connection.lookback_days,
            source,
            overlap: ChronoDuration::from_std(connector.overlap_window())
                .unwrap_or(ChronoDuration::minutes(5)),
            deletes_reported: system
                .objects
                .iter()
                .filter(|support| support.deletes)
                .map(|support| support.object)
                .collect(),
            cancel,
        };

        let mut totals = Totals::default();
        let mut status = RunStatus::Succeeded;
        let mut errors = Vec::new();
        for stream in &streams {
            if cancel.is_cancelled() {
                status = RunStatus::Cancelled;
                break;
            }
            match self.sync_stream(&scope, stream, &mut totals).await {
                Ok(None) => {}
                Ok(Some(warning)) => errors.push(format!("{}: {warning}", stream.object)),
                Err(StreamStop::Cancelled) => {
                    status = RunStatus::Cancelled;
                    break;
                }
                Err(StreamStop::CredentialsRejected(reason)) => {
                    tracing::warn!(
                        parent: &span,
                        stream = %stream.object,
                        reason = %reason,
                        "source rejected the credentials"
                    );
                    store.set_reauth_required(id, &reason).await?;
                    errors.push(format!(
                        "{}: the source rejected the credentials: {reason}",
                        stream.object
                    ));
                    status = RunStatus::Failed;
                    break;
                }
                Err(StreamStop::Failed(message)) => {
                    tracing::warn!(
                        parent: &span,
                        stream = %stream.object,
                        error = %message,
                        "stream failed"
                    );
                    store
                        .set_stream_state(
                            id,
                            stream.object,
                            StreamState::Failed,
                            Some(Some(&message)),
                        )
                        .await?;
                    errors.push(format!("{}: {message}", stream.object));
                    status = RunStatus::Failed;
                }
            }
        }

        let error = (!errors.is_empty()).then(|| errors.join("; "));
        store
            .finish_run(&run_id, &outcome(status, &totals, error))
            .await?;
        tracing::info!(
            parent: &span,
            status = %status,
            read = totals.records_read,
            created = totals.stats.created,
            updated = totals.stats.updated,
            unchanged = totals.stats.unchanged,
            deleted = totals.records_deleted,
            "sync run finished"
        );
        Ok(())
    }

    /// Opens the stored credentials and builds the source client, or says why it cannot.
    async fn open_source(
        &self,
        id: &str,
        connector: &dyn millrace_connector::Connector,
    ) -> Result<Box<dyn Source>, String> {
        let sealed = self
            .inner
            .store
            .sealed_credentials(id)
            .await
            .map_err(|err| err.to_string())?;
        let plaintext = self
            .inner
            .secrets
            .open(&sealed)
            .map_err(|err| format!("stored credentials cannot be opened: {err}"))?;
        let credentials: Credentials = serde_json::from_slice(&plaintext)
            .map_err(|err| format!("stored credentials are not valid JSON: {err}"))?;
        connector.open(&credentials).map_err(|err| err.to_string())
    }

    /// Reads one stream to its end, then reconciles it when due. Returns a warning when the
    /// read succeeded but reconciliation did not.
    async fn sync_stream(
        &self,
        scope: &RunScope<'_>,
        stream: &StreamRow,
        totals: &mut Totals,
    ) -> Result<Option<String>, StreamStop> {
        let store = &self.inner.store;
        let id = scope.connection_id;
        let object = stream.object;
        let mut read = self.plan_read(scope, stream);
        if stream.checkpoint.is_none() {
            // Every change this read stores comes after this position; the stream's completion
            // announces them from there (`records.changed`).
            read.changes_after_seq = Some(store.change_seq(id).await?);
        }
        store
            .set_stream_state(id, object, StreamState::Running, None)
            .await?;

        // While a page is being stored, the next one is already being fetched: the source and
        // the store work at the same time. The checkpoint stored with a page names the page
        // after it, so a crash between the two loses nothing.
        self.keep_claim(scope).await?;
        let mut page = self
            .fetch(scope, object, &read, read.next_page.clone())
            .await?;
        let mut rejected = Vec::new();
        loop {
            rejected.append(&mut page.rejected);
            let delivered = page.records.len() as u64;
            let page_newest = page
                .records
                .iter()
                .filter_map(|record| record.remote_updated_at)
                .max();
            let next_page = page.next_page.take();
            let writes = to_writes(id, object, page.records);
            read.max_seen = read.max_seen.max(page_newest);
            read.records_read += delivered;
            read.pages_read += 1;
            read.next_page = next_page.clone();
            read.ordered_by_change = page.ordered_by_change;
            read.listing_started_at = read.listing_started_at.or(page.listing_started_at);
            // A resumed listing's total counts what is left; progress counts from the start.
            let expected = page.total.map(|total| read.read_before_listing + total);
            read.records_expected = expected.or(read.records_expected);

            let checkpoint = read.checkpoint(scope);
            let stored = store.apply_page(id, object, &writes, &checkpoint, Utc::now());
            let Some(next_page) = next_page else {
                totals.add(object, delivered, stored.await?);
                break;
            };
            self.keep_claim(scope).await?;
            let (stored, fetched) =
                tokio::join!(stored, self.fetch(scope, object, &read, Some(next_page)));
            totals.add(object, delivered, stored?);
            page = fetched?;
        }

        let mut warnings = Vec::new();
        if !rejected.is_empty() {
            warnings.push(rejected_warning(&rejected));
        }
        if self.reconciliation_due(scope, stream) {
            match self.reconcile(scope, object).await {
                Ok(deleted) => totals.add_deleted(object, deleted),
                Err(StreamStop::Failed(message)) => {
                    warnings.push(format!("reconciliation failed: {message}"));
                }
                Err(stop) => return Err(stop),
            }
        }

        let watermark = stream.watermark.max(read.newest_safe_change());
        store
            .complete_stream(id, object, watermark, Utc::now())
            .await?;
        if warnings.is_empty() {
            return Ok(None);
        }
        // The read completed, so the stream is idle; the warning stays on it until the next
        // complete read without one.
        let warning = warnings.join("; ");
        tracing::warn!(
            connection_id = %id,
            stream = %object,
            warning = %warning,
            "stream completed with a warning"
        );
        store
            .set_stream_state(id, object, StreamState::Idle, Some(Some(&warning)))
            .await?;
        Ok(Some(warning))
    }

    /// Fetches one page of a stream's read, unless the run is cancelled first.
    async fn fetch(
        &self,
        scope: &RunScope<'_>,
        object: ObjectType,
        read: &ReadState,
        page: Option<String>,
    ) -> Result<Page, StreamStop> {
        let request = PageRequest {
            connection_id: scope.connection_id.to_owned(),
            object,
            since: read.since,
            page,
            page_size: self.inner.config.page_size,
        };
        tokio::select! {
            page = scope.source.read_page(&request) => Ok(page?),
            () = scope.cancel.cancelled() => Err(StreamStop::Cancelled),
        }
    }

    /// Decides where a stream's read starts: a checkpoint, the watermark, or the lookback.
    fn plan_read(&self, scope: &RunScope<'_>, stream: &StreamRow) -> ReadState {
        if let Some(checkpoint) = &stream.checkpoint {
            let resume_at_newest = checkpoint.ordered_by_change && checkpoint.max_seen.is_some();
            return ReadState {
                since: if resume_at_newest {
                    checkpoint.max_seen
                } else {
                    checkpoint.since
                },
                next_page: if resume_at_newest {
                    None
                } else {
                    checkpoint.next_page.clone()
                },
                ordered_by_change: checkpoint.ordered_by_change,
                max_seen: checkpoint.max_seen,
                records_read: checkpoint.records_read,
                pages_read: checkpoint.pages_read,
                records_expected: checkpoint.records_expected,
                read_before_listing: if resume_at_newest {
                    checkpoint.records_read
                } else {
                    0
                },
                // A listing started over is a new listing; a continued one keeps its start.
                listing_started_at: if resume_at_newest {
                    None
                } else {
                    checkpoint.listing_started_at
                },
                changes_after_seq: checkpoint.changes_after_seq,
            };
        }

        // Without a watermark (never synced, or nothing with a change time seen yet), the read
        // is the initial one again: master data whole, transactional data over the lookback.
        let since = match stream.watermark {
            Some(watermark) => Some(watermark - scope.overlap),
            None => match stream.object.kind() {
                ObjectKind::Master => None,
                ObjectKind::Transactional => {
                    Some(Utc::now() - ChronoDuration::days(scope.lookback_days.into()))
                }
            },
        };
        ReadState {
            since,
            ..ReadState::default()
        }
    }

    /// Renews the lease and checks for cancellation before each page.
    async fn keep_claim(&self, scope: &RunScope<'_>) -> Result<(), StreamStop> {
        if scope.cancel.is_cancelled() {
            return Err(StreamStop::Cancelled);
        }
        let until =
            Utc::now() + ChronoDuration::from_std(self.inner.config.lease).unwrap_or_default();
        let held = self
            .inner
            .store
            .renew_lease(scope.connection_id, &self.inner.worker_id, until)
            .await?;
        if held {
            Ok(())
        } else {
            Err(StreamStop::Cancelled)
        }
    }

    fn reconciliation_due(&self, scope: &RunScope<'_>, stream: &StreamRow) -> bool {
        if scope.deletes_reported.contains(&stream.object) {
            return false;
        }
        let interval = ChronoDuration::from_std(self.inner.config.reconcile_interval)
            .unwrap_or(ChronoDuration::hours(1));
        stream
            .last_reconciled_at
            .is_none_or(|last| Utc::now() - last >= interval)
    }

    /// Lists every id the source holds for `object` and marks stored records it no longer holds
    /// as deleted. Runs only after a complete read; a listing that fails marks nothing.
    async fn reconcile(&self, scope: &RunScope<'_>, object: ObjectType) -> Result<u64, StreamStop> {
        let mut remote_ids: HashSet<u64> = HashSet::new();
        let mut page: Option<String> = None;
        loop {
            self.keep_claim(scope).await?;
            let listed = tokio::select! {
                listed = scope.source.list_ids(object, page.as_deref()) => listed?,
                () = scope.cancel.cancelled() => return Err(StreamStop::Cancelled),
            };
            remote_ids.extend(listed.remote_ids.iter().map(|remote_id| id_hash(remote_id)));
            match listed.next_page {
                Some(next) => page = Some(next),
                None => break,
            }
        }

        // The stored ids are walked in pages and the source's are kept as 64-bit hashes, so a
        // stream of a million records costs megabytes, not the ids themselves. A collision can
        // only hide a deletion (until the next pass), never invent one.
        let store = &self.inner.store;
        let mut vanished = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let stored = store
                .live_remote_ids(scope.connection_id, object, after.as_deref(), ID_PAGE)
                .await?;
            let Some(last) = stored.last().cloned() else {
                break;
            };
            vanished.extend(
                stored
                    .into_iter()
                    .filter(|remote_id| !remote_ids.contains(&id_hash(remote_id))),
            );
            after = Some(last);
        }
        let now = Utc::now();
        let deleted = if vanished.is_empty() {
            0
        } else {
            store
                .mark_remote_deleted(scope.connection_id, object, &vanished, now)
                .await?
        };
        store
            .set_reconciled(scope.connection_id, object, now)
            .await?;
        if deleted > 0 {
            tracing::info!(
                connection_id = %scope.connection_id,
                stream = %object,
                deleted,
                "reconciliation found deletions"
            );
        }
        Ok(deleted)
    }
}

/// Describes the records a read went past because they could not be read: how many, and the
/// first few by id and reason.
fn rejected_warning(rejected: &[RejectedRecord]) -> String {
    const SHOWN: usize = 5;
    let shown: Vec<String> = rejected
        .iter()
        .take(SHOWN)
        .map(|record| {
            format!(
                "{} ({})",
                record.remote_id.as_deref().unwrap_or("no id"),
                record.reason
            )
        })
        .collect();
    let more = rejected.len().saturating_sub(SHOWN);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "{} record(s) could not be read and were skipped: {}{tail}",
        rejected.len(),
        shown.join(", ")
    )
}

/// Stored remote ids read per page while reconciling.
const ID_PAGE: u32 = 10_000;

/// Returns a 64-bit hash of a remote id (SipHash with fixed keys: the same within a run).
fn id_hash(remote_id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    remote_id.hash(&mut hasher);
    hasher.finish()
}

/// Where a stream's read stands; becomes the checkpoint stored with each page.
#[derive(Debug, Default)]
struct ReadState {
    since: Option<DateTime<Utc>>,
    next_page: Option<String>,
    ordered_by_change: bool,
    max_seen: Option<DateTime<Utc>>,
    records_read: u64,
    pages_read: u64,
    records_expected: Option<u64>,
    /// Records an interrupted read had delivered before this listing started over.
    read_before_listing: u64,
    /// The source's clock when the listing began, when the source tells.
    listing_started_at: Option<DateTime<Utc>>,
    /// The connection's change sequence number when the read began.
    changes_after_seq: Option<i64>,
}

impl ReadState {
    /// Returns the newest change time the watermark may take after this read completes.
    ///
    /// An ordered listing has delivered everything older than its newest change. An unordered
    /// one may have passed records that changed while it ran; those changes are at or after
    /// the listing's start, so the watermark stops there.
    fn newest_safe_change(&self) -> Option<DateTime<Utc>> {
        match (self.ordered_by_change, self.listing_started_at) {
            (false, Some(started)) => self.max_seen.map(|newest| newest.min(started)),
            _ => self.max_seen,
        }
    }

    fn checkpoint(&self, scope: &RunScope<'_>) -> Checkpoint {
        Checkpoint {
            run_id: scope.run_id.clone(),
            kind: scope.kind,
            since: self.since,
            next_page: self.next_page.clone(),
            ordered_by_change: self.ordered_by_change,
            max_seen: self.max_seen,
            records_read: self.records_read,
            pages_read: self.pages_read,
            records_expected: self.records_expected,
            listing_started_at: self.listing_started_at,
            changes_after_seq: self.changes_after_seq,
        }
    }
}

/// Turns a page into store writes, keeping the last copy when a page repeats a record.
fn to_writes(
    connection_id: &str,
    object: ObjectType,
    records: Vec<SourceRecord>,
) -> Vec<RecordWrite> {
    let mut position: HashMap<String, usize> = HashMap::with_capacity(records.len());
    let mut writes: Vec<RecordWrite> = Vec::with_capacity(records.len());
    for record in records {
        let write = RecordWrite {
            id: ids::record_id(connection_id, object, &record.remote_id),
            content_hash: content_hash(&record),
            remote_id: record.remote_id,
            remote_created_at: record.remote_created_at,
            remote_updated_at: record.remote_updated_at,
            remote_deleted_at: record.remote_deleted_at,
            fields: record.fields,
            custom_fields: record.custom_fields,
            remote_data: record.remote_data,
        };
        match position.get(&write.remote_id) {
            Some(&index) => writes[index] = write,
            None => {
                position.insert(write.remote_id.clone(), writes.len());
                writes.push(write);
            }
        }
    }
    writes
}

fn outcome(status: RunStatus, totals: &Totals, error: Option<String>) -> RunOutcome {
    RunOutcome {
        status,
        finished_at: Utc::now(),
        records_read: totals.records_read,
        stats: totals.stats,
        records_deleted: totals.records_deleted,
        error,
        objects: totals.objects.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn an_unordered_listing_never_moves_the_watermark_past_its_start() {
        let mut read = ReadState {
            max_seen: Some(at(100)),
            listing_started_at: Some(at(40)),
            ..ReadState::default()
        };
        assert_eq!(read.newest_safe_change(), Some(at(40)));

        read.ordered_by_change = true;
        assert_eq!(
            read.newest_safe_change(),
            Some(at(100)),
            "ordered listings keep the newest"
        );

        read.ordered_by_change = false;
        read.listing_started_at = None;
        assert_eq!(
            read.newest_safe_change(),
            Some(at(100)),
            "no start known: the newest seen"
        );

        read.listing_started_at = Some(at(400));
        assert_eq!(read.newest_safe_change(), Some(at(100)));
    }
}
