//! Stream state, checkpoints and the history of sync runs, with the events that announce them.

use chrono::{DateTime, Utc};
use millrace_model::{EventType, ObjectType, RunKind, RunStatus, StreamState, SyncRun};
use serde_json::{json, Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::convert::{json, micros, opt_micros, opt_time, parse, signed, time, unsigned};
use crate::webhooks::{insert_event, CursorPosition, NewEvent};
use crate::{Checkpoint, RunOutcome, Store, StoreError, StreamRow};

/// The columns `stream_row` reads, from `streams` aliased as `s`.
pub(crate) const STREAM_COLUMNS: &str = "s.connection_id, s.object, s.state, s.watermark, \
     s.last_successful_sync_at, s.last_error, s.record_count, s.checkpoint, s.last_reconciled_at";

const RUN_COLUMNS: &str = "id, connection_id, kind, status, run_trigger, started_at, finished_at, \
     records_read, records_created, records_updated, records_unchanged, records_deleted, error";

impl Store {
    /// Returns the connection's streams with their checkpoints, in object order.
    pub async fn streams(&self, connection_id: &str) -> Result<Vec<StreamRow>, StoreError> {
        let sql = format!("SELECT {STREAM_COLUMNS} FROM streams s WHERE s.connection_id = $1");
        let rows = sqlx::query(&sql)
            .bind(connection_id)
            .fetch_all(&self.read)
            .await?;
        let mut streams = rows
            .iter()
            .map(|row| stream_row(row).map(|(_, stream)| stream))
            .collect::<Result<Vec<_>, _>>()?;
        streams.sort_by_key(|stream| stream.object);
        Ok(streams)
    }

    /// Sets a stream's state and, when given, its last error (`Some(None)` clears it).
    pub async fn set_stream_state(
        &self,
        connection_id: &str,
        object: ObjectType,
        state: StreamState,
        last_error: Option<Option<&str>>,
    ) -> Result<(), StoreError> {
        let result = match last_error {
            None => {
                sqlx::query(
                    "UPDATE streams SET state = $3 WHERE connection_id = $1 AND object = $2",
                )
                .bind(connection_id)
                .bind(object.slug())
                .bind(state.as_str())
                .execute(&self.write)
                .await?
            }
            Some(error) => {
                sqlx::query(
                    "UPDATE streams SET state = $3, last_error = $4 \
                     WHERE connection_id = $1 AND object = $2",
                )
                .bind(connection_id)
                .bind(object.slug())
                .bind(state.as_str())
                .bind(error)
                .execute(&self.write)
                .await?
            }
        };
        stream_touched(result.rows_affected(), connection_id)
    }

    /// Records that a stream finished a complete read: state `idle`, watermark set (kept when
    /// `None`), `last_successful_sync_at = at`, checkpoint and last error cleared.
    ///
    /// In the same transaction, when the read stored changes after the position its checkpoint
    /// names (`changes_after_seq`), writes a `records.changed` event with their counts and that
    /// position; a read resumed after a crash announces what its first part stored too.
    pub async fn complete_stream(
        &self,
        connection_id: &str,
        object: ObjectType,
        watermark: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let checkpoint: Option<String> =
            sqlx::query("SELECT checkpoint FROM streams WHERE connection_id = $1 AND object = $2")
                .bind(connection_id)
                .bind(object.slug())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::ConnectionNotFound(connection_id.to_owned()))?
                .try_get("checkpoint")?;
        let checkpoint: Option<Checkpoint> = checkpoint.as_deref().map(json).transpose()?;

        sqlx::query(
            "UPDATE streams SET state = 'idle', watermark = COALESCE($3, watermark), \
             last_successful_sync_at = $4, checkpoint = NULL, last_error = NULL \
             WHERE connection_id = $1 AND object = $2",
        )
        .bind(connection_id)
        .bind(object.slug())
        .bind(opt_micros(watermark))
        .bind(micros(at))
        .execute(&mut *tx)
        .await?;

        if let Some(checkpoint) = checkpoint {
            if let Some(after_seq) = checkpoint.changes_after_seq {
                announce_changes(&mut tx, connection_id, object, &checkpoint, after_seq, at)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records that a reconciliation pass finished for a stream at `at`.
    pub async fn set_reconciled(
        &self,
        connection_id: &str,
        object: ObjectType,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let result = sqlx::query(
            "UPDATE streams SET last_reconciled_at = $3 WHERE connection_id = $1 AND object = $2",
        )
        .bind(connection_id)
        .bind(object.slug())
        .bind(micros(at))
        .execute(&self.write)
        .await?;
        stream_touched(result.rows_affected(), connection_id)
    }

    /// Opens a run history row (`running`) and returns its id.
    pub async fn start_run(
        &self,
        connection_id: &str,
        kind: RunKind,
        trigger: &str,
        at: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        // Version 7 ids sort by time, which breaks ties between runs started in one microsecond.
        let id = uuid::Uuid::now_v7().to_string();
        let result = sqlx::query(
            "INSERT INTO sync_runs (id, connection_id, kind, status, run_trigger, started_at) \
             SELECT $1, id, $3, 'running', $4, $5 FROM connections WHERE id = $2",
        )
        .bind(&id)
        .bind(connection_id)
        .bind(kind.as_str())
        .bind(trigger)
        .bind(micros(at))
        .execute(&self.write)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::ConnectionNotFound(connection_id.to_owned()));
        }
        Ok(id)
    }

    /// Closes a run history row. A run that `succeeded` writes a `sync.completed` event, one
    /// that `failed` a `sync.failed` event, in the same transaction; a cancelled run announces
    /// nothing (its connection's own event, or the resumed run's, tells).
    pub async fn finish_run(&self, run_id: &str, outcome: &RunOutcome) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let run = sqlx::query(
            "UPDATE sync_runs SET status = $2, finished_at = $3, records_read = $4, \
             records_created = $5, records_updated = $6, records_unchanged = $7, \
             records_deleted = $8, error = $9 WHERE id = $1 \
             RETURNING id, connection_id, kind, run_trigger, started_at",
        )
        .bind(run_id)
        .bind(outcome.status.as_str())
        .bind(micros(outcome.finished_at))
        .bind(signed(outcome.records_read))
        .bind(signed(outcome.stats.created))
        .bind(signed(outcome.stats.updated))
        .bind(signed(outcome.stats.unchanged))
        .bind(signed(outcome.records_deleted))
        .bind(outcome.error.as_deref())
        .fetch_optional(&mut *tx)
        .await?;

        let event_type = match outcome.status {
            RunStatus::Succeeded => Some(EventType::SyncCompleted),
            RunStatus::Failed => Some(EventType::SyncFailed),
            RunStatus::Running | RunStatus::Cancelled => None,
        };
        if let (Some(run), Some(event_type)) = (run, event_type) {
            let objects: Map<String, Value> = outcome
                .objects
                .iter()
                .map(|(object, counts)| (object.slug().to_owned(), json!(counts)))
                .collect();
            let records = json!({
                "read": outcome.records_read,
                "created": outcome.stats.created,
                "updated": outcome.stats.updated,
                "unchanged": outcome.stats.unchanged,
                "deleted": outcome.records_deleted,
            });
            let mut data = run_event_data(&run, outcome.finished_at, outcome.error.as_deref())?;
            data.insert("status".to_owned(), json!(outcome.status.as_str()));
            data.insert("records".to_owned(), records);
            data.insert("objects".to_owned(), Value::Object(objects));
            let connection_id: String = run.try_get("connection_id")?;
            insert_event(
                &mut tx,
                NewEvent {
                    event_type,
                    connection_id: &connection_id,
                    data,
                    cursor: None,
                    at: outcome.finished_at,
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks runs still `running` for a connection as `failed` with `reason` (a dead worker's),
    /// each with a `sync.failed` event.
    pub async fn abandon_runs(&self, connection_id: &str, reason: &str) -> Result<(), StoreError> {
        let now = Utc::now();
        let mut tx = self.begin_write().await?;
        let runs = sqlx::query(
            "UPDATE sync_runs SET status = 'failed', error = $2, finished_at = $3 \
             WHERE connection_id = $1 AND status = 'running' \
             RETURNING id, connection_id, kind, run_trigger, started_at",
        )
        .bind(connection_id)
        .bind(reason)
        .bind(micros(now))
        .fetch_all(&mut *tx)
        .await?;
        for run in &runs {
            let mut data = run_event_data(run, now, Some(reason))?;
            data.insert("status".to_owned(), json!(RunStatus::Failed.as_str()));
            insert_event(
                &mut tx,
                NewEvent {
                    event_type: EventType::SyncFailed,
                    connection_id,
                    data,
                    cursor: None,
                    at: now,
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Returns the connection's last change sequence number: changes stored later take
    /// greater ones.
    pub async fn change_seq(&self, connection_id: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT change_seq FROM connections WHERE id = $1")
            .bind(connection_id)
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::ConnectionNotFound(connection_id.to_owned()))?;
        Ok(row.try_get("change_seq")?)
    }

    /// Returns a connection's runs, newest first.
    pub async fn runs(&self, connection_id: &str, limit: u32) -> Result<Vec<SyncRun>, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs WHERE connection_id = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2"
        );
        sqlx::query(&sql)
            .bind(connection_id)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(run_row)
            .collect()
    }
}

/// Writes a `records.changed` event for the changes of a stream stored after `after_seq`, when
/// there are any: counts of records created, updated and marked deleted, and the position to
/// read them from.
async fn announce_changes(
    tx: &mut Transaction<'static, Any>,
    connection_id: &str,
    object: ObjectType,
    checkpoint: &Checkpoint,
    after_seq: i64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    // A record first stored by this read and not changed again has `created_at = modified_at`.
    let counts = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS changed, \
         CAST(COALESCE(SUM(CASE WHEN remote_deleted_at IS NOT NULL THEN 1 ELSE 0 END), 0) \
              AS BIGINT) AS deleted, \
         CAST(COALESCE(SUM(CASE WHEN remote_deleted_at IS NULL AND created_at = modified_at \
              THEN 1 ELSE 0 END), 0) AS BIGINT) AS created \
         FROM records WHERE connection_id = $1 AND object = $2 AND seq > $3",
    )
    .bind(connection_id)
    .bind(object.slug())
    .bind(after_seq)
    .fetch_one(&mut **tx)
    .await?;
    let changed: i64 = counts.try_get("changed")?;
    if changed == 0 {
        return Ok(());
    }
    let deleted: i64 = counts.try_get("deleted")?;
    let created: i64 = counts.try_get("created")?;
    let epoch: i64 = sqlx::query("SELECT data_epoch FROM connections WHERE id = $1")
        .bind(connection_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("data_epoch")?;

    let data = Map::from_iter([
        ("object".to_owned(), json!(object.slug())),
        ("run_id".to_owned(), json!(checkpoint.run_id)),
        ("kind".to_owned(), json!(checkpoint.kind.as_str())),
        (
            "counts".to_owned(),
            json!({
                "changed": changed,
                "created": created,
                "updated": changed - created - deleted,
                "deleted": deleted,
            }),
        ),
    ]);
    insert_event(
        tx,
        NewEvent {
            event_type: EventType::RecordsChanged,
            connection_id,
            data,
            cursor: Some(CursorPosition {
                object,
                after_seq,
                epoch,
            }),
            at,
        },
    )
    .await?;
    Ok(())
}

/// The members every run event carries, from a row of `id, kind, run_trigger, started_at`.
fn run_event_data(
    run: &AnyRow,
    finished_at: DateTime<Utc>,
    error: Option<&str>,
) -> Result<Map<String, Value>, StoreError> {
    let run_id: String = run.try_get("id")?;
    let kind: RunKind = parse(run.try_get("kind")?)?;
    let trigger: String = run.try_get("run_trigger")?;
    let started_at = time(run.try_get("started_at")?)?;
    Ok(Map::from_iter([
        ("run_id".to_owned(), json!(run_id)),
        ("kind".to_owned(), json!(kind.as_str())),
        ("trigger".to_owned(), json!(trigger)),
        ("started_at".to_owned(), json!(started_at)),
        ("finished_at".to_owned(), json!(finished_at)),
        ("error".to_owned(), json!(error)),
    ]))
}

/// Turns "no stream row was updated" into an error naming the connection.
fn stream_touched(rows_affected: u64, connection_id: &str) -> Result<(), StoreError> {
    if rows_affected == 0 {
        return Err(StoreError::ConnectionNotFound(connection_id.to_owned()));
    }
    Ok(())
}

/// Reads a row of `STREAM_COLUMNS`; returns the connection id beside the stream.
pub(crate) fn stream_row(row: &AnyRow) -> Result<(String, StreamRow), StoreError> {
    let checkpoint: Option<String> = row.try_get("checkpoint")?;
    let stream = StreamRow {
        object: parse(row.try_get("object")?)?,
        state: parse(row.try_get("state")?)?,
        watermark: opt_time(row.try_get("watermark")?)?,
        last_successful_sync_at: opt_time(row.try_get("last_successful_sync_at")?)?,
        last_error: row.try_get("last_error")?,
        record_count: unsigned(row.try_get("record_count")?)?,
        checkpoint: checkpoint.as_deref().map(json).transpose()?,
        last_reconciled_at: opt_time(row.try_get("last_reconciled_at")?)?,
    };
    Ok((row.try_get("connection_id")?, stream))
}

fn run_row(row: &AnyRow) -> Result<SyncRun, StoreError> {
    let kind: RunKind = parse(row.try_get("kind")?)?;
    let status: RunStatus = parse(row.try_get("status")?)?;
    Ok(SyncRun {
        id: row.try_get("id")?,
        connection_id: row.try_get("connection_id")?,
        kind,
        status,
        trigger: row.try_get("run_trigger")?,
        started_at: time(row.try_get("started_at")?)?,
        finished_at: opt_time(row.try_get("finished_at")?)?,
        records_read: unsigned(row.try_get("records_read")?)?,
        records_created: unsigned(row.try_get("records_created")?)?,
        records_updated: unsigned(row.try_get("records_updated")?)?,
        records_unchanged: unsigned(row.try_get("records_unchanged")?)?,
        records_deleted: unsigned(row.try_get("records_deleted")?)?,
        error: row.try_get("error")?,
    })
}
