//! Settings, connections, their tokens and the credit pool.

use chrono::{DateTime, Utc};
use millrace_model::connection::StreamProgress;
use millrace_model::{
    Connection, ConnectionStatus, Credits, EventType, LedgerEntry, ObjectType, Stream, StreamState,
};
use serde_json::{json, Map};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::convert::{micros, opt_time, parse, time, unsigned};
use crate::runs::{stream_row, STREAM_COLUMNS};
use crate::webhooks::{insert_event, NewEvent};
use crate::{ConnectionFilter, NewConnection, Store, StoreError, StreamRow, TokenLookup};

const CONNECTION_COLUMNS: &str = "c.id, c.customer_id, c.system, c.deployment, c.name, c.status, \
     c.status_reason, c.credits, c.lookback_days, c.sync_interval_seconds, c.created_at, \
     c.disconnected_at, c.next_sync_at";

impl Store {
    // ---- settings (a key/value table) ----

    /// Returns a setting.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let value = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.read)
            .await?
            .map(|row| row.try_get("value"))
            .transpose()?;
        Ok(value)
    }

    /// Stores a setting unless one exists; returns the value now stored.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await?;
        let stored: String = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&mut *tx)
            .await?
            .try_get("value")?;
        tx.commit().await?;
        Ok(stored)
    }

    // ---- connections ----

    /// Reserves credits and creates the connection, its token and its streams, in one
    /// transaction. Refuses with `InsufficientCredits` (creating nothing) when the pool of
    /// `credit_pool` credits has fewer than `new.credits` available. Writes a `reserve` ledger
    /// entry and a `connection.created` event. The connection is `active`, its streams
    /// `pending`, its next sync due now.
    #[tracing::instrument(skip(self, new), fields(connection_id = %new.id, system = %new.system))]
    pub async fn create_connection(
        &self,
        new: NewConnection,
        credit_pool: u32,
    ) -> Result<Connection, StoreError> {
        let mut tx = self.begin_write().await?;

        // Every credit check takes this row first, so two creates cannot both see the same
        // free credits (on SQLite the write lock already orders them).
        sqlx::query("UPDATE locks SET name = name WHERE name = 'credits'")
            .execute(&mut *tx)
            .await?;
        let used: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(credits), 0) AS BIGINT) AS used FROM connections \
             WHERE status <> 'disconnected'",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get("used")?;
        let available = (i64::from(credit_pool) - used).max(0);
        if available < i64::from(new.credits) {
            return Err(StoreError::InsufficientCredits {
                needed: new.credits,
                available: unsigned(available)?,
            });
        }

        let created_at = micros(new.created_at);
        sqlx::query(
            "INSERT INTO connections (id, customer_id, system, deployment, name, status, credits, \
             lookback_days, sync_interval_seconds, sealed_credentials, created_at, next_sync_at) \
             VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $9, $10, $10)",
        )
        .bind(&new.id)
        .bind(&new.customer_id)
        .bind(&new.system)
        .bind(new.deployment.as_str())
        .bind(&new.name)
        .bind(i64::from(new.credits))
        .bind(i64::from(new.lookback_days))
        .bind(i64::from(new.sync_interval_seconds))
        .bind(&new.sealed_credentials)
        .bind(created_at)
        .execute(&mut *tx)
        .await?;

        sqlx::query("INSERT INTO tokens (hash, connection_id, created_at) VALUES ($1, $2, $3)")
            .bind(&new.token_hash)
            .bind(&new.id)
            .bind(created_at)
            .execute(&mut *tx)
            .await?;

        let mut objects = new.objects.clone();
        objects.sort();
        objects.dedup();
        for object in &objects {
            sqlx::query(
                "INSERT INTO streams (connection_id, object, state) VALUES ($1, $2, 'pending')",
            )
            .bind(&new.id)
            .bind(object.slug())
            .execute(&mut *tx)
            .await?;
        }

        insert_ledger(
            &mut tx,
            &new.id,
            -i64::from(new.credits),
            "reserve",
            created_at,
        )
        .await?;
        let data = Map::from_iter([
            ("system".to_owned(), json!(new.system)),
            ("deployment".to_owned(), json!(new.deployment.as_str())),
            ("name".to_owned(), json!(new.name)),
            ("credits".to_owned(), json!(new.credits)),
        ]);
        insert_event(
            &mut tx,
            NewEvent {
                event_type: EventType::ConnectionCreated,
                connection_id: &new.id,
                data,
                cursor: None,
                at: new.created_at,
            },
        )
        .await?;
        tx.commit().await?;

        let streams = objects
            .iter()
            .map(|object| Stream {
                object: object.slug().to_owned(),
                state: StreamState::Pending,
                watermark: None,
                last_successful_sync_at: None,
                record_count: 0,
                last_error: None,
                next_run_at: Some(new.created_at),
                progress: None,
            })
            .collect();
        Ok(Connection {
            id: new.id,
            customer_id: new.customer_id,
            system: new.system,
            deployment: new.deployment,
            name: new.name,
            status: ConnectionStatus::Active,
            credits: new.credits,
            lookback_days: new.lookback_days,
            sync_interval_seconds: new.sync_interval_seconds,
            created_at: time(created_at)?,
            disconnected_at: None,
            status_reason: None,
            streams,
        })
    }

    /// Returns a connection with its streams.
    pub async fn connection(&self, id: &str) -> Result<Option<Connection>, StoreError> {
        let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections c WHERE c.id = $1");
        let Some(row) = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let (mut connection, next_sync_at) = connection_from_row(&row)?;

        let sql = format!("SELECT {STREAM_COLUMNS} FROM streams s WHERE s.connection_id = $1");
        let rows = sqlx::query(&sql).bind(id).fetch_all(&self.read).await?;
        let mut streams = rows.iter().map(stream_row).collect::<Result<Vec<_>, _>>()?;
        streams.sort_by_key(|(_, stream)| stream.object);
        connection.streams = streams
            .iter()
            .map(|(_, stream)| model_stream(stream, next_sync_at))
            .collect();
        Ok(Some(connection))
    }

    /// Lists connections with their streams, newest first.
    pub async fn list_connections(
        &self,
        filter: &ConnectionFilter,
    ) -> Result<Vec<Connection>, StoreError> {
        let mut conditions = Vec::new();
        let mut params: Vec<&str> = Vec::new();
        let wanted = [
            ("c.customer_id", filter.customer_id.as_deref()),
            ("c.system", filter.system.as_deref()),
            ("c.status", filter.status.map(ConnectionStatus::as_str)),
        ];
        for (column, value) in wanted {
            if let Some(value) = value {
                params.push(value);
                conditions.push(format!("{column} = ${}", params.len()));
            }
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };

        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections c {where_clause} \
             ORDER BY c.created_at DESC, c.id DESC"
        );
        let mut query = sqlx::query(&sql);
        for param in &params {
            query = query.bind(*param);
        }
        let rows = query.fetch_all(&self.read).await?;

        let sql = format!(
            "SELECT {STREAM_COLUMNS} FROM streams s \
             JOIN connections c ON c.id = s.connection_id {where_clause}"
        );
        let mut query = sqlx::query(&sql);
        for param in &params {
            query = query.bind(*param);
        }
        let mut streams = query
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(stream_row)
            .collect::<Result<Vec<(String, StreamRow)>, _>>()?;
        streams.sort_by(|(a_id, a), (b_id, b)| (a_id, a.object).cmp(&(b_id, b.object)));

        rows.iter()
            .map(|row| {
                let (mut connection, next_sync_at) = connection_from_row(row)?;
                connection.streams = streams
                    .iter()
                    .filter(|(connection_id, _)| *connection_id == connection.id)
                    .map(|(_, stream)| model_stream(stream, next_sync_at))
                    .collect();
                Ok(connection)
            })
            .collect()
    }

    /// Resolves a token hash, including revoked tokens (so the API can say why it refuses).
    pub async fn token_lookup(&self, token_hash: &str) -> Result<Option<TokenLookup>, StoreError> {
        let row = sqlx::query(
            "SELECT t.connection_id, c.status, t.revoked_at FROM tokens t \
             JOIN connections c ON c.id = t.connection_id WHERE t.hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(TokenLookup {
            connection_id: row.try_get("connection_id")?,
            connection_status: parse(row.try_get("status")?)?,
            revoked_at: opt_time(row.try_get("revoked_at")?)?,
        }))
    }

    /// Revokes the connection's live token and stores `new_token_hash` as its token.
    /// Refuses with `ConnectionInactive` for a connection that is not active.
    #[tracing::instrument(skip(self, new_token_hash))]
    pub async fn rotate_token(&self, id: &str, new_token_hash: &str) -> Result<(), StoreError> {
        let now = micros(Utc::now());
        let mut tx = self.begin_write().await?;
        let (status, _credits) = lock_connection(&mut tx, id).await?;
        if status != ConnectionStatus::Active {
            return Err(StoreError::ConnectionInactive(id.to_owned()));
        }

        revoke_tokens(&mut tx, id, now).await?;
        sqlx::query("INSERT INTO tokens (hash, connection_id, created_at) VALUES ($1, $2, $3)")
            .bind(new_token_hash)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Disconnects: status `disconnected`, tokens revoked, credits returned (a `release` ledger
    /// entry), streams `paused`, lease dropped, no next sync, a `connection.disconnected` event.
    /// Idempotent: a second call changes nothing and returns the connection.
    #[tracing::instrument(skip(self))]
    pub async fn disconnect(&self, id: &str, at: DateTime<Utc>) -> Result<Connection, StoreError> {
        let at = micros(at);
        let mut tx = self.begin_write().await?;
        let (status, credits) = lock_connection(&mut tx, id).await?;

        if status != ConnectionStatus::Disconnected {
            sqlx::query(
                "UPDATE connections SET status = 'disconnected', disconnected_at = $2, \
                 next_sync_at = NULL, lease_owner = NULL, lease_until = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            revoke_tokens(&mut tx, id, at).await?;
            sqlx::query("UPDATE streams SET state = 'paused' WHERE connection_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_ledger(&mut tx, id, credits, "release", at).await?;
            let disconnected_at = time(at)?;
            let data = Map::from_iter([("disconnected_at".to_owned(), json!(disconnected_at))]);
            insert_event(
                &mut tx,
                NewEvent {
                    event_type: EventType::ConnectionDisconnected,
                    connection_id: id,
                    data,
                    cursor: None,
                    at: disconnected_at,
                },
            )
            .await?;
        }
        tx.commit().await?;

        self.connection(id)
            .await?
            .ok_or_else(|| StoreError::ConnectionNotFound(id.to_owned()))
    }

    /// Marks an active connection `reauth_required` with `reason`; streams become `paused`.
    /// Credits stay reserved. Does nothing to a disconnected connection. Writes a
    /// `connection.reauth_required` event.
    #[tracing::instrument(skip(self))]
    pub async fn set_reauth_required(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let (status, _credits) = lock_connection(&mut tx, id).await?;
        if status != ConnectionStatus::Active {
            return Ok(());
        }

        sqlx::query(
            "UPDATE connections SET status = 'reauth_required', status_reason = $2, \
             next_sync_at = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE streams SET state = 'paused' WHERE connection_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let data = Map::from_iter([("reason".to_owned(), json!(reason))]);
        insert_event(
            &mut tx,
            NewEvent {
                event_type: EventType::ConnectionReauthRequired,
                connection_id: id,
                data,
                cursor: None,
                at: Utc::now(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Returns the sealed credentials of a connection.
    pub async fn sealed_credentials(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        let row = sqlx::query("SELECT sealed_credentials FROM connections WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::ConnectionNotFound(id.to_owned()))?;
        Ok(row.try_get("sealed_credentials")?)
    }

    /// Returns the connection's data epoch (0 until data is first deleted).
    pub async fn data_epoch(&self, id: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT data_epoch FROM connections WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::ConnectionNotFound(id.to_owned()))?;
        Ok(row.try_get("data_epoch")?)
    }

    // ---- credits ----

    /// Returns the pool of `total` credits, what active and reauth-required connections hold,
    /// and the whole ledger, newest first.
    pub async fn credits(&self, total: u32) -> Result<Credits, StoreError> {
        let used: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(credits), 0) AS BIGINT) AS used FROM connections \
             WHERE status <> 'disconnected'",
        )
        .fetch_one(&self.read)
        .await?
        .try_get("used")?;
        let used: u32 = unsigned(used)?;

        let ledger = sqlx::query(
            "SELECT id, connection_id, delta, reason, at FROM credit_ledger ORDER BY id DESC",
        )
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|row| {
            Ok(LedgerEntry {
                id: row.try_get("id")?,
                connection_id: row.try_get("connection_id")?,
                delta: row.try_get("delta")?,
                reason: row.try_get("reason")?,
                at: time(row.try_get("at")?)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;

        Ok(Credits {
            total,
            used,
            available: total.saturating_sub(used),
            ledger,
        })
    }
}

/// Locks a connection's row for the rest of the transaction; returns its status and credits.
pub(crate) async fn lock_connection(
    tx: &mut Transaction<'static, Any>,
    id: &str,
) -> Result<(ConnectionStatus, i64), StoreError> {
    let row = sqlx::query(
        "UPDATE connections SET status = status WHERE id = $1 RETURNING status, credits",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::ConnectionNotFound(id.to_owned()))?;
    Ok((parse(row.try_get("status")?)?, row.try_get("credits")?))
}

/// Revokes every live token of a connection.
async fn revoke_tokens(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tokens SET revoked_at = $2 WHERE connection_id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_ledger(
    tx: &mut Transaction<'static, Any>,
    connection_id: &str,
    delta: i64,
    reason: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO credit_ledger (connection_id, delta, reason, at) VALUES ($1, $2, $3, $4)",
    )
    .bind(connection_id)
    .bind(delta)
    .bind(reason)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Reads a row of `CONNECTION_COLUMNS`; streams are left empty. Also returns `next_sync_at`.
fn connection_from_row(row: &AnyRow) -> Result<(Connection, Option<DateTime<Utc>>), StoreError> {
    let connection = Connection {
        id: row.try_get("id")?,
        customer_id: row.try_get("customer_id")?,
        system: row.try_get("system")?,
        deployment: parse(row.try_get("deployment")?)?,
        name: row.try_get("name")?,
        status: parse(row.try_get("status")?)?,
        credits: unsigned(row.try_get("credits")?)?,
        lookback_days: unsigned(row.try_get("lookback_days")?)?,
        sync_interval_seconds: unsigned(row.try_get("sync_interval_seconds")?)?,
        created_at: time(row.try_get("created_at")?)?,
        disconnected_at: opt_time(row.try_get("disconnected_at")?)?,
        status_reason: row.try_get("status_reason")?,
        streams: Vec::new(),
    };
    Ok((connection, opt_time(row.try_get("next_sync_at")?)?))
}

/// Returns the API's view of a stream; progress shows only while the stream runs.
fn model_stream(row: &StreamRow, next_sync_at: Option<DateTime<Utc>>) -> Stream {
    let progress = match (&row.checkpoint, row.state) {
        (Some(checkpoint), StreamState::Running) => Some(StreamProgress {
            run_id: checkpoint.run_id.clone(),
            records_read: checkpoint.records_read,
            pages_read: checkpoint.pages_read,
            records_expected: checkpoint.records_expected,
        }),
        _ => None,
    };
    Stream {
        object: ObjectType::slug(row.object).to_owned(),
        state: row.state,
        watermark: row.watermark,
        last_successful_sync_at: row.last_successful_sync_at,
        record_count: row.record_count,
        last_error: row.last_error.clone(),
        next_run_at: next_sync_at,
        progress,
    }
}
