//! The subscriber's durable journal: a SQLite file per subscription that holds the records the
//! subscriber made of what the broker delivered, the edge nodes' state (births, aliases,
//! sequence numbers), and the messages it could not read.
//!
//! The journal is what turns a push source into one the pull-based engine can page through.
//! Every write of a record takes a change stamp, microseconds since the Unix epoch from this
//! host's clock but never smaller than the previous stamp plus one: stamps are unique and
//! increase in commit order (one writer, the subscriber). A listing walks a record type by
//! stamp, so it is change-ordered, and a record written while it pages lands after its end.
//! A message is acknowledged to the broker only after its records committed here with
//! `synchronous = FULL`.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::ingest::NodeState;

/// The record type of the rows that hold messages the subscriber could not read.
const REJECTED: &str = "_rejected";

/// A journal file, opened.
#[derive(Clone)]
pub struct Journal {
    pool: SqlitePool,
}

/// One record the subscriber derived, to upsert into the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// The unified object slug, e.g. `meter-readings`.
    pub object: String,
    pub remote_id: String,
    pub body: RecordBody,
    /// Keeps the first copy: a redelivered reading must not count as a change.
    pub insert_only: bool,
}

/// What the journal keeps of a record, turned into a `SourceRecord` when it is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordBody {
    pub fields: serde_json::Map<String, Value>,
    /// References by remote id: field name to `[object slug, remote id]`. They become
    /// `Reference`s when read, since a record id needs the connection id.
    pub references: Vec<(String, String, String)>,
    pub custom_fields: serde_json::Map<String, Value>,
    pub remote_data: Value,
    pub remote_created_at: Option<DateTime<Utc>>,
}

/// A record read back, with its change stamp.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub remote_id: String,
    pub body: RecordBody,
    pub changed_us: i64,
}

/// A message that could not be read, as the journal keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The topic, and the metric when one metric of a message was at fault.
    pub subject: String,
    pub reason: String,
}

/// Everything one message changes, written in one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<JournalRecord>,
    pub rejections: Vec<Rejection>,
    /// The new state of the message's edge node, keyed `group/node`.
    pub node: Option<(String, NodeState)>,
}

/// A failure of the journal file itself.
#[derive(Debug, thiserror::Error)]
#[error("the sparkplug journal failed: {0}")]
pub struct JournalError(String);

impl From<sqlx::Error> for JournalError {
    fn from(err: sqlx::Error) -> Self {
        JournalError(err.to_string())
    }
}

impl From<serde_json::Error> for JournalError {
    fn from(err: serde_json::Error) -> Self {
        JournalError(format!("a journal row is not valid JSON: {err}"))
    }
}

impl Journal {
    /// Opens (creating when needed) the journal file at `path`.
    pub async fn open(path: &Path) -> Result<Journal, JournalError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|err| {
                JournalError(format!("cannot create {}: {err}", parent.display()))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(30));
        // One connection: the subscriber's writes and the engine's reads take turns, and the
        // stamps' commit order is the order they were taken in.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        Ok(Journal { pool })
    }

    /// Closes the file.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Returns every edge node's saved state.
    pub async fn node_states(&self) -> Result<HashMap<String, NodeState>, JournalError> {
        let rows = sqlx::query("SELECT node, state FROM nodes")
            .fetch_all(&self.pool)
            .await?;
        let mut states = HashMap::new();
        for row in rows {
            let node: String = row.try_get("node")?;
            let state: String = row.try_get("state")?;
            states.insert(node, serde_json::from_str(&state)?);
        }
        Ok(states)
    }

    /// Writes one message's records, rejections and node state in one transaction. Returns
    /// how many records changed.
    pub async fn apply(&self, batch: &Batch) -> Result<u64, JournalError> {
        let mut tx = self.pool.begin().await?;
        let last: Option<i64> = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'stamp'")
            .fetch_optional(&mut *tx)
            .await?;
        let mut stamp = Utc::now()
            .timestamp_micros()
            .max(last.map_or(i64::MIN, |last| last + 1));
        let mut changed = 0;

        for record in &batch.records {
            let body = serde_json::to_string(&record.body)?;
            let sql = if record.insert_only {
                "INSERT INTO records (object, remote_id, body, changed_us) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (object, remote_id) DO NOTHING"
            } else {
                "INSERT INTO records (object, remote_id, body, changed_us) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (object, remote_id) DO UPDATE \
                 SET body = excluded.body, changed_us = excluded.changed_us \
                 WHERE records.body <> excluded.body"
            };
            let done = sqlx::query(sql)
                .bind(&record.object)
                .bind(&record.remote_id)
                .bind(body)
                .bind(stamp)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() > 0 {
                changed += 1;
                stamp += 1;
            }
        }
        for rejection in &batch.rejections {
            let remote_id = format!("{stamp}");
            let body =
                serde_json::json!({"subject": rejection.subject, "reason": rejection.reason});
            sqlx::query(
                "INSERT INTO records (object, remote_id, body, changed_us) VALUES ($1, $2, $3, $4)",
            )
            .bind(REJECTED)
            .bind(remote_id)
            .bind(body.to_string())
            .bind(stamp)
            .execute(&mut *tx)
            .await?;
            stamp += 1;
        }
        if let Some((node, state)) = &batch.node {
            sqlx::query(
                "INSERT INTO nodes (node, state) VALUES ($1, $2) \
                 ON CONFLICT (node) DO UPDATE SET state = excluded.state",
            )
            .bind(node)
            .bind(serde_json::to_string(state)?)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('stamp', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(stamp)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Reads up to `limit` records of `object` changed at or after `since_us` and after the
    /// stamp `after_us`, in stamp order.
    pub async fn read(
        &self,
        object: &str,
        since_us: i64,
        after_us: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredRecord>, JournalError> {
        let rows = sqlx::query(
            "SELECT remote_id, body, changed_us FROM records \
             WHERE object = $1 AND changed_us >= $2 AND changed_us > $3 \
             ORDER BY changed_us LIMIT $4",
        )
        .bind(object)
        .bind(since_us)
        .bind(after_us.unwrap_or(i64::MIN))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let body: String = row.try_get("body")?;
                Ok(StoredRecord {
                    remote_id: row.try_get("remote_id")?,
                    body: serde_json::from_str(&body)?,
                    changed_us: row.try_get("changed_us")?,
                })
            })
            .collect()
    }

    /// Returns the rejections journaled with a stamp in `from_us..=until_us`.
    pub async fn rejections(
        &self,
        from_us: i64,
        until_us: i64,
    ) -> Result<Vec<Rejection>, JournalError> {
        let rows = sqlx::query(
            "SELECT body FROM records WHERE object = $1 AND changed_us >= $2 AND changed_us <= $3 \
             ORDER BY changed_us LIMIT 1000",
        )
        .bind(REJECTED)
        .bind(from_us)
        .bind(until_us)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let body: String = row.try_get("body")?;
                let body: Value = serde_json::from_str(&body)?;
                Ok(Rejection {
                    subject: body["subject"].as_str().unwrap_or_default().to_owned(),
                    reason: body["reason"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect()
    }

    /// Lists up to `limit` remote ids of `object` after `after`, in id order.
    pub async fn remote_ids(
        &self,
        object: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, JournalError> {
        let ids = sqlx::query_scalar(
            "SELECT remote_id FROM records WHERE object = $1 AND remote_id > $2 \
             ORDER BY remote_id LIMIT $3",
        )
        .bind(object)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }
}

const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS records (
        object TEXT NOT NULL,
        remote_id TEXT NOT NULL,
        body TEXT NOT NULL,
        changed_us INTEGER NOT NULL,
        PRIMARY KEY (object, remote_id)
    )",
    "CREATE INDEX IF NOT EXISTS records_by_change ON records (object, changed_us)",
    "CREATE TABLE IF NOT EXISTS nodes (node TEXT PRIMARY KEY, state TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn record(remote_id: &str, value: f64, insert_only: bool) -> JournalRecord {
        let mut fields = serde_json::Map::new();
        fields.insert("value".into(), value.into());
        JournalRecord {
            object: "meter-readings".into(),
            remote_id: remote_id.into(),
            body: RecordBody {
                fields,
                references: vec![],
                custom_fields: Default::default(),
                remote_data: Value::Null,
                remote_created_at: None,
            },
            insert_only,
        }
    }

    #[tokio::test]
    async fn stamps_increase_duplicates_are_absorbed_and_pages_follow_stamps() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.db")).await.unwrap();
        let first = Batch {
            records: vec![record("a", 1.0, true), record("b", 2.0, true)],
            ..Batch::default()
        };
        assert_eq!(journal.apply(&first).await.unwrap(), 2);
        assert_eq!(
            journal.apply(&first).await.unwrap(),
            0,
            "a redelivery changes nothing"
        );
        let upsert = Batch {
            records: vec![record("a", 5.0, false)],
            ..Batch::default()
        };
        assert_eq!(journal.apply(&upsert).await.unwrap(), 1);

        let all = journal.read("meter-readings", 0, None, 10).await.unwrap();
        let order: Vec<&str> = all.iter().map(|r| r.remote_id.as_str()).collect();
        assert_eq!(order, ["b", "a"], "an updated record moves to the end");
        assert!(all[0].changed_us < all[1].changed_us);
        let page = journal
            .read("meter-readings", 0, Some(all[0].changed_us), 10)
            .await
            .unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].body.fields["value"], 5.0);
        assert_eq!(
            journal
                .remote_ids("meter-readings", Some("a"), 10)
                .await
                .unwrap(),
            vec!["b"]
        );

        // The file is durable: a reopened journal reads the same.
        journal.close().await;
        let reopened = Journal::open(&dir.path().join("j.db")).await.unwrap();
        assert_eq!(
            reopened
                .read("meter-readings", 0, None, 10)
                .await
                .unwrap()
                .len(),
            2
        );
    }
}
