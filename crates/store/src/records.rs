//! Records: pages applied with their checkpoint, tombstones, and reads in change order.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use millrace_model::ObjectType;
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::convert::{json, micros, opt_micros, opt_time, time};
use crate::schema::{json_text_at, Placeholders};
use crate::{
    ApplyStats, Backend, Checkpoint, RecordQuery, RecordWrite, Store, StoreError, StoredRecord,
    StoredRecordText,
};

/// Rows per multi-row upsert: 14 parameters each, well under SQLite's 32766 and PostgreSQL's
/// 65535 parameters per statement.
const UPSERT_BATCH: usize = 1000;

/// Remote ids per `IN (...)` lookup.
const LOOKUP_BATCH: usize = 1000;

/// What the store holds of a record before a page is applied.
struct Existing {
    content_hash: String,
    live: bool,
}

impl Store {
    /// Stores one page and the stream's checkpoint in one transaction.
    ///
    /// Records whose stored `content_hash` equals the new one are left untouched (`unchanged`).
    /// New or changed records take the next change sequence numbers of the connection and
    /// `modified_at = at` (`created_at = at` for new ones). Keeps the stream's live record count
    /// (records with no `remote_deleted_at`) and sets state `running`. Fails with
    /// `ConnectionInactive`, storing nothing, when the connection is not active.
    pub async fn apply_page(
        &self,
        connection_id: &str,
        object: ObjectType,
        records: &[RecordWrite],
        checkpoint: &Checkpoint,
        at: DateTime<Utc>,
    ) -> Result<ApplyStats, StoreError> {
        let checkpoint = serde_json::to_string(checkpoint)
            .map_err(|err| StoreError::Corrupt(format!("checkpoint: {err}")))?;
        let mut tx = self.begin_write().await?;
        let last_seq = lock_active(&mut tx, connection_id).await?;

        let remote_ids: Vec<&str> = records.iter().map(|r| r.remote_id.as_str()).collect();
        let mut known = existing(self.backend, &mut tx, connection_id, object, &remote_ids).await?;

        // Classify in page order; a remote id seen twice in one page compares with its
        // earlier version, and only its last version is written (with the higher seq).
        let mut stats = ApplyStats::default();
        let mut live_delta: i64 = 0;
        let mut seq = last_seq;
        let mut changed: Vec<(&RecordWrite, i64)> = Vec::new();
        for record in records {
            let live = record.remote_deleted_at.is_none();
            match known.get(record.remote_id.as_str()) {
                Some(stored) if stored.content_hash == record.content_hash => {
                    stats.unchanged += 1;
                    continue;
                }
                Some(stored) => {
                    stats.updated += 1;
                    live_delta += i64::from(live) - i64::from(stored.live);
                }
                None => {
                    stats.created += 1;
                    live_delta += i64::from(live);
                }
            }
            known.insert(
                &record.remote_id,
                Existing {
                    content_hash: record.content_hash.clone(),
                    live,
                },
            );
            seq += 1;
            changed.push((record, seq));
        }
        let mut written = HashSet::new();
        let mut latest: Vec<(&RecordWrite, i64)> = changed
            .into_iter()
            .rev()
            .filter(|(record, _)| written.insert(record.remote_id.as_str()))
            .collect();
        latest.reverse();

        for batch in latest.chunks(UPSERT_BATCH) {
            upsert(
                self.backend,
                &mut tx,
                connection_id,
                object,
                batch,
                micros(at),
            )
            .await?;
        }
        if seq != last_seq {
            sqlx::query("UPDATE connections SET change_seq = $2 WHERE id = $1")
                .bind(connection_id)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO streams (connection_id, object, state, record_count, checkpoint) \
             VALUES ($1, $2, 'running', $3, $4) \
             ON CONFLICT (connection_id, object) DO UPDATE SET state = 'running', \
             record_count = streams.record_count + excluded.record_count, \
             checkpoint = excluded.checkpoint",
        )
        .bind(connection_id)
        .bind(object.slug())
        .bind(live_delta)
        .bind(&checkpoint)
        .execute(&mut *tx)
        .await?;

        tx.commit().await?;
        Ok(stats)
    }

    /// Returns up to `limit` remote ids of the stream's records not marked deleted, in remote
    /// id order, after `after` (from the start when `None`): pages of a walk over all of them.
    pub async fn live_remote_ids(
        &self,
        connection_id: &str,
        object: ObjectType,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let after_clause = if after.is_some() {
            "AND remote_id > $4 "
        } else {
            ""
        };
        let sql = format!(
            "SELECT remote_id FROM records WHERE connection_id = $1 AND object = $2 \
             AND remote_deleted_at IS NULL {after_clause}ORDER BY remote_id LIMIT $3"
        );
        let mut query = sqlx::query(&sql)
            .bind(connection_id)
            .bind(object.slug())
            .bind(i64::from(limit));
        if let Some(after) = after {
            query = query.bind(after);
        }
        query
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|row| Ok(row.try_get("remote_id")?))
            .collect()
    }

    /// Sets `remote_deleted_at = at` on the given live records, each taking a new change
    /// sequence number; returns how many were marked. Fails with `ConnectionInactive` like
    /// `apply_page`.
    pub async fn mark_remote_deleted(
        &self,
        connection_id: &str,
        object: ObjectType,
        remote_ids: &[String],
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let last_seq = lock_active(&mut tx, connection_id).await?;

        let ids: Vec<&str> = remote_ids.iter().map(String::as_str).collect();
        let known = existing(self.backend, &mut tx, connection_id, object, &ids).await?;
        let mut marked = HashSet::new();
        let mut seq = last_seq;
        for remote_id in ids {
            let is_live = known.get(remote_id).is_some_and(|stored| stored.live);
            if !is_live || !marked.insert(remote_id) {
                continue;
            }
            seq += 1;
            // The hash is cleared so that the record reappearing unchanged counts as a change.
            sqlx::query(
                "UPDATE records SET remote_deleted_at = $4, modified_at = $4, seq = $5, \
                 content_hash = '' \
                 WHERE connection_id = $1 AND object = $2 AND remote_id = $3",
            )
            .bind(connection_id)
            .bind(object.slug())
            .bind(remote_id)
            .bind(micros(at))
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        }

        let count = i64::try_from(marked.len()).unwrap_or(i64::MAX);
        if count > 0 {
            sqlx::query("UPDATE connections SET change_seq = $2 WHERE id = $1")
                .bind(connection_id)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE streams SET record_count = record_count - $3 \
                 WHERE connection_id = $1 AND object = $2",
            )
            .bind(connection_id)
            .bind(object.slug())
            .bind(count)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(marked.len() as u64)
    }

    /// Lists a stream's records in change order (ascending `seq`).
    pub async fn list_records(
        &self,
        connection_id: &str,
        object: ObjectType,
        query: &RecordQuery,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        self.query_records(connection_id, object, query)
            .await?
            .iter()
            .map(|row| stored_record(row, query.include_remote_data))
            .collect()
    }

    /// Like [`Store::list_records`], with the JSON members left as the text the store holds,
    /// for answers that pass them through without parsing them.
    pub async fn list_records_text(
        &self,
        connection_id: &str,
        object: ObjectType,
        query: &RecordQuery,
    ) -> Result<Vec<StoredRecordText>, StoreError> {
        self.query_records(connection_id, object, query)
            .await?
            .iter()
            .map(|row| stored_record_text(row, query.include_remote_data))
            .collect()
    }

    async fn query_records(
        &self,
        connection_id: &str,
        object: ObjectType,
        query: &RecordQuery,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let mut sql = format!(
            "SELECT {} FROM records WHERE connection_id = $1 AND object = $2 AND seq > $3",
            record_columns(query.include_remote_data)
        );
        let mut text_params: Vec<String> = Vec::new();
        // `$1`..`$3` are bound first, then the limit, then `modified_after` if any, then the
        // filters' text parameters.
        let mut next_param = 5;
        if query.modified_after.is_some() {
            let _ = write!(sql, " AND modified_at > ${next_param}");
            next_param += 1;
        }
        if !query.include_deleted {
            sql.push_str(" AND remote_deleted_at IS NULL");
        }
        for filter in &query.filters {
            let (expr, params) = json_text_at(self.backend, &filter.path, next_param);
            next_param += params.len();
            text_params.extend(params);
            let _ = write!(sql, " AND {expr} = ${next_param}");
            next_param += 1;
            text_params.push(filter.value.clone());
        }
        sql.push_str(" ORDER BY seq LIMIT $4");

        let mut db_query = sqlx::query(&sql)
            .bind(connection_id)
            .bind(object.slug())
            .bind(query.after_seq)
            .bind(i64::from(query.limit));
        if let Some(modified_after) = query.modified_after {
            db_query = db_query.bind(micros(modified_after));
        }
        for param in &text_params {
            db_query = db_query.bind(param.as_str());
        }
        Ok(db_query.fetch_all(&self.read).await?)
    }

    /// Returns one record by Millrace id.
    pub async fn record(
        &self,
        connection_id: &str,
        object: ObjectType,
        id: &str,
        include_remote_data: bool,
    ) -> Result<Option<StoredRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM records WHERE connection_id = $1 AND object = $2 AND id = $3",
            record_columns(include_remote_data)
        );
        sqlx::query(&sql)
            .bind(connection_id)
            .bind(object.slug())
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .map(|row| stored_record(&row, include_remote_data))
            .transpose()
    }

    /// Deletes every record of the connection and resets its streams (no watermark, no
    /// checkpoint, zero counts, state `paused` if disconnected else `pending`), and bumps the
    /// connection's data epoch so that earlier cursors become stale. Returns records deleted.
    #[tracing::instrument(skip(self))]
    pub async fn delete_data(&self, id: &str) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        crate::connections::lock_connection(&mut tx, id).await?;

        let deleted = sqlx::query("DELETE FROM records WHERE connection_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "UPDATE streams SET watermark = NULL, last_successful_sync_at = NULL, \
             last_error = NULL, record_count = 0, checkpoint = NULL, last_reconciled_at = NULL, \
             state = CASE WHEN (SELECT status FROM connections WHERE id = $1) = 'disconnected' \
             THEN 'paused' ELSE 'pending' END \
             WHERE connection_id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE connections SET data_epoch = data_epoch + 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }
}

/// Locks an active connection's row and returns its last change sequence number; fails with
/// `ConnectionInactive` (or `ConnectionNotFound`) otherwise. Holding the row lock until commit
/// is what makes sequence numbers commit in increasing order.
async fn lock_active(
    tx: &mut Transaction<'static, Any>,
    connection_id: &str,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "UPDATE connections SET change_seq = change_seq WHERE id = $1 AND status = 'active' \
         RETURNING change_seq",
    )
    .bind(connection_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = row {
        return Ok(row.try_get("change_seq")?);
    }

    let exists = sqlx::query("SELECT id FROM connections WHERE id = $1")
        .bind(connection_id)
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    if exists {
        Err(StoreError::ConnectionInactive(connection_id.to_owned()))
    } else {
        Err(StoreError::ConnectionNotFound(connection_id.to_owned()))
    }
}

/// Fetches the stored hash and liveness of the given records, by remote id.
async fn existing<'a>(
    backend: Backend,
    tx: &mut Transaction<'static, Any>,
    connection_id: &str,
    object: ObjectType,
    remote_ids: &[&'a str],
) -> Result<HashMap<&'a str, Existing>, StoreError> {
    let mut found = HashMap::with_capacity(remote_ids.len());
    // Keys borrow from the caller's records rather than from the fetched rows.
    let wanted: HashSet<&'a str> = remote_ids.iter().copied().collect();
    for batch in remote_ids.chunks(LOOKUP_BATCH) {
        let mut params = Placeholders::new(backend);
        let (connection_param, object_param) = (params.next(), params.next());
        let ids = (0..batch.len())
            .map(|_| params.next())
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT remote_id, content_hash, remote_deleted_at FROM records \
             WHERE connection_id = {connection_param} AND object = {object_param} \
             AND remote_id IN ({ids})"
        );
        let mut query = sqlx::query(&sql).bind(connection_id).bind(object.slug());
        for remote_id in batch {
            query = query.bind(*remote_id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let remote_id: String = row.try_get("remote_id")?;
            let deleted_at: Option<i64> = row.try_get("remote_deleted_at")?;
            if let Some(key) = wanted.get(remote_id.as_str()) {
                let content_hash = row.try_get("content_hash")?;
                found.insert(
                    *key,
                    Existing {
                        content_hash,
                        live: deleted_at.is_none(),
                    },
                );
            }
        }
    }
    Ok(found)
}

/// Inserts or replaces a batch of changed records with one statement.
async fn upsert(
    backend: Backend,
    tx: &mut Transaction<'static, Any>,
    connection_id: &str,
    object: ObjectType,
    batch: &[(&RecordWrite, i64)],
    at: i64,
) -> Result<(), StoreError> {
    let mut params = Placeholders::new(backend);
    let mut sql = String::with_capacity(600 + batch.len() * 80);
    sql.push_str(
        "INSERT INTO records (connection_id, object, created_at, modified_at, remote_id, id, \
         seq, content_hash, remote_created_at, remote_updated_at, remote_deleted_at, fields, \
         custom_fields, remote_data) VALUES ",
    );
    for row in 0..batch.len() {
        if row > 0 {
            sql.push_str(", ");
        }
        let values: Vec<String> = (0..14).map(|_| params.next()).collect();
        let _ = write!(sql, "({})", values.join(", "));
    }
    sql.push_str(
        " ON CONFLICT (connection_id, object, remote_id) DO UPDATE SET id = excluded.id, \
         seq = excluded.seq, content_hash = excluded.content_hash, \
         modified_at = excluded.modified_at, remote_created_at = excluded.remote_created_at, \
         remote_updated_at = excluded.remote_updated_at, \
         remote_deleted_at = excluded.remote_deleted_at, fields = excluded.fields, \
         custom_fields = excluded.custom_fields, remote_data = excluded.remote_data",
    );
    let json_texts: Vec<[String; 3]> = batch
        .iter()
        .map(|(record, _)| {
            [
                json_text(&record.fields),
                json_text(&record.custom_fields),
                record.remote_data.to_string(),
            ]
        })
        .collect();

    let mut query = sqlx::query(&sql);
    for ((record, seq), [fields, custom_fields, remote_data]) in batch.iter().zip(&json_texts) {
        query = query
            .bind(connection_id)
            .bind(object.slug())
            .bind(at)
            .bind(at)
            .bind(record.remote_id.as_str())
            .bind(record.id.as_str())
            .bind(*seq)
            .bind(record.content_hash.as_str())
            .bind(opt_micros(record.remote_created_at))
            .bind(opt_micros(record.remote_updated_at))
            .bind(opt_micros(record.remote_deleted_at))
            .bind(fields.as_str())
            .bind(custom_fields.as_str())
            .bind(remote_data.as_str());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

fn json_text(map: &Map<String, Value>) -> String {
    serde_json::to_string(map).expect("a JSON map always serialises")
}

fn record_columns(include_remote_data: bool) -> &'static str {
    if include_remote_data {
        "id, remote_id, seq, created_at, modified_at, remote_created_at, remote_updated_at, \
         remote_deleted_at, fields, custom_fields, remote_data"
    } else {
        "id, remote_id, seq, created_at, modified_at, remote_created_at, remote_updated_at, \
         remote_deleted_at, fields, custom_fields"
    }
}

fn stored_record_text(
    row: &AnyRow,
    include_remote_data: bool,
) -> Result<StoredRecordText, StoreError> {
    let remote_data = if include_remote_data {
        Some(row.try_get("remote_data")?)
    } else {
        None
    };
    Ok(StoredRecordText {
        id: row.try_get("id")?,
        remote_id: row.try_get("remote_id")?,
        seq: row.try_get("seq")?,
        created_at: time(row.try_get("created_at")?)?,
        modified_at: time(row.try_get("modified_at")?)?,
        remote_created_at: opt_time(row.try_get("remote_created_at")?)?,
        remote_updated_at: opt_time(row.try_get("remote_updated_at")?)?,
        remote_deleted_at: opt_time(row.try_get("remote_deleted_at")?)?,
        fields: row.try_get("fields")?,
        custom_fields: row.try_get("custom_fields")?,
        remote_data,
    })
}

/// Reads a record row with its JSON members parsed.
fn stored_record(row: &AnyRow, include_remote_data: bool) -> Result<StoredRecord, StoreError> {
    let text = stored_record_text(row, include_remote_data)?;
    Ok(StoredRecord {
        id: text.id,
        remote_id: text.remote_id,
        seq: text.seq,
        created_at: text.created_at,
        modified_at: text.modified_at,
        remote_created_at: text.remote_created_at,
        remote_updated_at: text.remote_updated_at,
        remote_deleted_at: text.remote_deleted_at,
        fields: json(&text.fields)?,
        custom_fields: json(&text.custom_fields)?,
        remote_data: text.remote_data.as_deref().map(json).transpose()?,
    })
}
