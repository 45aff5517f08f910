//! Webhooks: the operator's endpoints, the outbox of events, and deliveries with every attempt.
//!
//! An event is written by [`insert_event`] inside the transaction of the change it announces
//! (a connection created, disconnected or needing reauthorisation, a stream's read completed,
//! a run finished), together with one pending delivery per endpoint whose filter takes it. A
//! change that commits has its deliveries queued; one that rolls back announces nothing; a
//! crash cannot fall between the two.
//!
//! Deliveries are claimed by workers with a lease, like syncs ([`Store::claim_webhook_deliveries`]),
//! so several processes on one PostgreSQL database never send the same attempt twice at once;
//! a worker that dies mid-attempt leaves a lease that runs out, and the attempt is made again
//! (delivery is at least once). Each attempt is one row of `webhook_attempts`.

use chrono::{DateTime, SecondsFormat, Utc};
use millrace_model::{
    DeliveryAttempt, DeliveryStatus, EndpointStatus, EventType, ObjectType, WebhookDelivery,
    WebhookEndpoint,
};
use serde_json::{json, Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::convert::{json, micros, opt_micros, opt_time, parse, time, unsigned};
use crate::{Backend, Store, StoreError};

const ENDPOINT_COLUMNS: &str = "id, url, description, events, status, consecutive_failures, \
     failing_since, created_at";

const EVENT_COLUMNS: &str = "ev.id AS event_id, ev.event_type, ev.connection_id, ev.payload, \
     ev.cursor_object, ev.cursor_seq, ev.cursor_epoch, ev.created_at AS event_created_at";

/// What `create_webhook_endpoint` stores.
#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    /// `None` delivers every event type.
    pub events: Option<Vec<EventType>>,
    /// The signing secret sealed by [`crate::secrets::SecretBox`].
    pub sealed_secret: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// Where a `records.changed` event's cursor points: after change `after_seq` of the stream of
/// `object`, in data epoch `epoch`. Signing it into a cursor is the API's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorPosition {
    pub object: ObjectType,
    pub after_seq: i64,
    pub epoch: i64,
}

/// An event as the outbox holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// `msg_...`, sent as `webhook-id`.
    pub id: String,
    pub event_type: EventType,
    pub connection_id: Option<String>,
    /// `{"type", "timestamp", "data"}`; a `records.changed` event gets its `data.cursor` from
    /// [`StoredEvent::cursor`] when it is sent.
    pub payload: Value,
    pub cursor: Option<CursorPosition>,
    pub created_at: DateTime<Utc>,
}

/// A delivery a worker has claimed: what to send, where, and under which secret.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery_id: String,
    pub endpoint_id: String,
    pub url: String,
    /// The endpoint's signing secret, sealed.
    pub sealed_secret: Vec<u8>,
    /// The number of the attempt to make now (1 for the first).
    pub attempt: u32,
    pub event: StoredEvent,
}

/// How one attempt went, as [`Store::record_webhook_attempt`] logs it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// `None` when the endpoint accepted the event (a 2xx answer).
    pub error: Option<String>,
}

/// An event to write with the change it announces.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent<'a> {
    pub event_type: EventType,
    pub connection_id: &'a str,
    /// The event's own members; `connection_id` and `customer_id` are added.
    pub data: Map<String, Value>,
    pub cursor: Option<CursorPosition>,
    pub at: DateTime<Utc>,
}

impl Store {
    /// Registers an endpoint; it receives the events written from now on. Its status starts
    /// `active`.
    #[tracing::instrument(skip(self, new), fields(endpoint_id = %new.id))]
    pub async fn create_webhook_endpoint(
        &self,
        new: NewWebhookEndpoint,
    ) -> Result<WebhookEndpoint, StoreError> {
        let events = new.events.as_ref().map(|events| {
            let names: Vec<&str> = events.iter().map(|event| event.as_str()).collect();
            serde_json::to_string(&names).expect("a list of names always serialises")
        });
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, url, description, events, sealed_secret, status, \
             created_at) VALUES ($1, $2, $3, $4, $5, 'active', $6)",
        )
        .bind(&new.id)
        .bind(&new.url)
        .bind(&new.description)
        .bind(events)
        .bind(&new.sealed_secret)
        .bind(micros(new.created_at))
        .execute(&self.write)
        .await?;
        self.webhook_endpoint(&new.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("endpoint {} vanished", new.id)))
    }

    /// Lists the endpoints, newest first.
    pub async fn webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at DESC, id DESC"
        );
        sqlx::query(&sql)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(endpoint_row)
            .collect()
    }

    /// Returns one endpoint.
    pub async fn webhook_endpoint(&self, id: &str) -> Result<Option<WebhookEndpoint>, StoreError> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(endpoint_row)
            .transpose()
    }

    /// Deletes an endpoint with its deliveries and their attempts (the events stay in the
    /// outbox). Returns whether it existed.
    #[tracing::instrument(skip(self))]
    pub async fn delete_webhook_endpoint(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM webhook_attempts WHERE delivery_id IN \
             (SELECT id FROM webhook_deliveries WHERE endpoint_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE endpoint_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }

    /// Returns the sealed signing secret of an endpoint.
    pub async fn webhook_sealed_secret(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT sealed_secret FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|row| row.try_get("sealed_secret")).transpose()?)
    }

    /// Lists an endpoint's deliveries, newest first, each with its attempts.
    pub async fn webhook_deliveries(
        &self,
        endpoint_id: &str,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.id, d.endpoint_id, d.event_id, ev.event_type, d.status, d.next_attempt_at, \
             d.created_at, d.delivered_at FROM webhook_deliveries d \
             JOIN webhook_events ev ON ev.id = d.event_id \
             WHERE d.endpoint_id = $1 ORDER BY d.created_at DESC, d.id DESC LIMIT $2",
        )
        .bind(endpoint_id)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        let mut deliveries = rows
            .iter()
            .map(delivery_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.fill_attempts(&mut deliveries).await?;
        Ok(deliveries)
    }

    /// Returns one delivery with its attempts.
    pub async fn webhook_delivery(&self, id: &str) -> Result<Option<WebhookDelivery>, StoreError> {
        let row = sqlx::query(
            "SELECT d.id, d.endpoint_id, d.event_id, ev.event_type, d.status, d.next_attempt_at, \
             d.created_at, d.delivered_at FROM webhook_deliveries d \
             JOIN webhook_events ev ON ev.id = d.event_id WHERE d.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut deliveries = vec![delivery_row(&row)?];
        self.fill_attempts(&mut deliveries).await?;
        Ok(deliveries.pop())
    }

    /// Queues a delivery again, due at `now`, whatever its status (a manual retry). Returns the
    /// delivery, or `None` when there is no such delivery.
    #[tracing::instrument(skip(self))]
    pub async fn retry_webhook_delivery(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookDelivery>, StoreError> {
        let updated = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(micros(now))
        .execute(&self.write)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        self.webhook_delivery(id).await
    }

    /// Claims up to `limit` pending deliveries that are due at `now` and not leased by a live
    /// worker, leasing each to `worker` until `lease_until`. Each delivery is claimed by one
    /// worker only, even with several processes on one PostgreSQL database. Oldest due first.
    pub async fn claim_webhook_deliveries(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let claimable = "status = 'pending' AND next_attempt_at <= $3 \
                         AND (lease_until IS NULL OR lease_until < $3)";
        let sql = format!(
            "WITH due AS MATERIALIZED (SELECT id FROM webhook_deliveries WHERE {claimable} \
             ORDER BY next_attempt_at, id LIMIT $4 {lock}) \
             UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 \
             WHERE id IN (SELECT id FROM due) AND {claimable} RETURNING id"
        );
        let claimed: Vec<String> = sqlx::query(&sql)
            .bind(worker)
            .bind(micros(lease_until))
            .bind(micros(now))
            .bind(i64::from(limit))
            .fetch_all(&self.write)
            .await?
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }

        let ids = (1..=claimed.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT d.id, d.endpoint_id, d.attempt_count, e.url, e.sealed_secret, {EVENT_COLUMNS} \
             FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             JOIN webhook_events ev ON ev.id = d.event_id \
             WHERE d.id IN ({ids}) ORDER BY d.next_attempt_at, d.id"
        );
        let mut query = sqlx::query(&sql);
        for id in &claimed {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.write).await?;
        rows.iter()
            .map(|row| {
                let attempts_made: u32 = unsigned(row.try_get("attempt_count")?)?;
                Ok(DueDelivery {
                    delivery_id: row.try_get("id")?,
                    endpoint_id: row.try_get("endpoint_id")?,
                    url: row.try_get("url")?,
                    sealed_secret: row.try_get("sealed_secret")?,
                    attempt: attempts_made + 1,
                    event: event_row(row)?,
                })
            })
            .collect()
    }

    /// Logs an attempt of a delivery `worker` holds, and moves the delivery and its endpoint on,
    /// in one transaction:
    /// - success: the delivery is `succeeded`; the endpoint's failure count returns to zero and
    ///   a `failing` mark is cleared;
    /// - failure with `retry_at`: the delivery stays `pending`, due then;
    /// - failure without `retry_at` (the schedule is exhausted): the delivery is `failed`.
    ///
    /// A failure counts against the endpoint, which is marked `failing` when the schedule was
    /// exhausted or when it reaches `failing_after` failures in a row. The attempt is logged
    /// even when the lease was lost meanwhile; the delivery is then left to its new holder.
    #[tracing::instrument(skip(self, record), fields(succeeded = record.error.is_none()))]
    pub async fn record_webhook_attempt(
        &self,
        delivery_id: &str,
        worker: &str,
        attempt: u32,
        record: &AttemptRecord,
        retry_at: Option<DateTime<Utc>>,
        failing_after: u32,
    ) -> Result<(), StoreError> {
        let at = micros(record.attempted_at);
        let mut tx = self.begin_write().await?;
        let endpoint: Option<String> =
            sqlx::query("SELECT endpoint_id FROM webhook_deliveries WHERE id = $1")
                .bind(delivery_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get("endpoint_id"))
                .transpose()?;
        let Some(endpoint_id) = endpoint else {
            // The endpoint was deleted, and its deliveries with it, while the attempt ran.
            return Ok(());
        };

        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code, \
             latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(delivery_id)
        .bind(i64::from(attempt))
        .bind(at)
        .bind(record.status_code.map(i64::from))
        .bind(i64::try_from(record.latency_ms).unwrap_or(i64::MAX))
        .bind(record.error.as_deref())
        .execute(&mut *tx)
        .await?;

        let succeeded = record.error.is_none();
        let (status, next_attempt_at) = match (succeeded, retry_at) {
            (true, _) => (DeliveryStatus::Succeeded, None),
            (false, Some(retry_at)) => (DeliveryStatus::Pending, Some(retry_at)),
            (false, None) => (DeliveryStatus::Failed, None),
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $3, attempt_count = $4, next_attempt_at = $5, \
             delivered_at = CASE WHEN $3 = 'succeeded' THEN COALESCE(delivered_at, $6) \
                                 ELSE delivered_at END, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(delivery_id)
        .bind(worker)
        .bind(status.as_str())
        .bind(i64::from(attempt))
        .bind(opt_micros(next_attempt_at))
        .bind(at)
        .execute(&mut *tx)
        .await?;

        if succeeded {
            sqlx::query(
                "UPDATE webhook_endpoints SET consecutive_failures = 0, status = 'active', \
                 failing_since = NULL WHERE id = $1",
            )
            .bind(&endpoint_id)
            .execute(&mut *tx)
            .await?;
        } else {
            let exhausted = status == DeliveryStatus::Failed;
            sqlx::query(
                "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1, \
                 status = CASE WHEN $2 OR consecutive_failures + 1 >= $3 THEN 'failing' \
                               ELSE status END, \
                 failing_since = CASE WHEN $2 OR consecutive_failures + 1 >= $3 \
                                      THEN COALESCE(failing_since, $4) ELSE failing_since END \
                 WHERE id = $1",
            )
            .bind(&endpoint_id)
            .bind(exhausted)
            .bind(i64::from(failing_after.max(1)))
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Returns up to `limit` events of the outbox, oldest first, after event `after` (an id;
    /// from the start when `None`).
    pub async fn webhook_events(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // Event ids are version 7 UUIDs: they sort by creation.
        let after_clause = if after.is_some() {
            "WHERE ev.id > $2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM webhook_events ev {after_clause} ORDER BY ev.id LIMIT $1"
        );
        let mut query = sqlx::query(&sql).bind(i64::from(limit));
        if let Some(after) = after {
            query = query.bind(after);
        }
        query
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(event_row)
            .collect()
    }

    async fn fill_attempts(&self, deliveries: &mut [WebhookDelivery]) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let ids = (1..=deliveries.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT delivery_id, attempt, attempted_at, status_code, latency_ms, error \
             FROM webhook_attempts WHERE delivery_id IN ({ids}) ORDER BY delivery_id, attempt, id"
        );
        let mut query = sqlx::query(&sql);
        for delivery in deliveries.iter() {
            query = query.bind(delivery.id.as_str());
        }
        for row in query.fetch_all(&self.read).await? {
            let delivery_id: String = row.try_get("delivery_id")?;
            let status_code: Option<i64> = row.try_get("status_code")?;
            let error: Option<String> = row.try_get("error")?;
            let attempt = DeliveryAttempt {
                attempt: unsigned(row.try_get("attempt")?)?,
                attempted_at: time(row.try_get("attempted_at")?)?,
                status_code: status_code.map(unsigned).transpose()?,
                latency_ms: unsigned(row.try_get("latency_ms")?)?,
                succeeded: error.is_none(),
                error,
            };
            if let Some(delivery) = deliveries.iter_mut().find(|d| d.id == delivery_id) {
                delivery.attempts.push(attempt);
            }
        }
        Ok(())
    }
}

/// Writes an event and queues a delivery of it to every endpoint whose filter takes it, inside
/// the caller's transaction. Returns the event's id.
pub(crate) async fn insert_event(
    tx: &mut Transaction<'static, Any>,
    event: NewEvent<'_>,
) -> Result<String, StoreError> {
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let at = micros(event.at);

    let customer_id: Option<String> =
        sqlx::query("SELECT customer_id FROM connections WHERE id = $1")
            .bind(event.connection_id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|row| row.try_get("customer_id"))
            .transpose()?;
    let mut data = event.data;
    data.insert("connection_id".to_owned(), json!(event.connection_id));
    data.insert("customer_id".to_owned(), json!(customer_id));
    let payload = json!({
        "type": event.event_type.as_str(),
        "timestamp": event.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "data": data,
    });

    let cursor = event.cursor;
    sqlx::query(
        "INSERT INTO webhook_events (id, event_type, connection_id, payload, cursor_object, \
         cursor_seq, cursor_epoch, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(event.event_type.as_str())
    .bind(event.connection_id)
    .bind(payload.to_string())
    .bind(cursor.map(|cursor| cursor.object.slug()))
    .bind(cursor.map(|cursor| cursor.after_seq))
    .bind(cursor.map(|cursor| cursor.epoch))
    .bind(at)
    .execute(&mut **tx)
    .await?;

    let endpoints = sqlx::query("SELECT id, events FROM webhook_endpoints")
        .fetch_all(&mut **tx)
        .await?;
    for endpoint in endpoints {
        let filter: Option<String> = endpoint.try_get("events")?;
        let wanted = match filter.as_deref().map(parse_events).transpose()? {
            None => true,
            Some(types) => types.contains(&event.event_type),
        };
        if !wanted {
            continue;
        }
        let endpoint_id: String = endpoint.try_get("id")?;
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, next_attempt_at, \
             created_at) VALUES ($1, $2, $3, 'pending', $4, $4)",
        )
        .bind(format!("dlv_{}", uuid::Uuid::now_v7().simple()))
        .bind(&endpoint_id)
        .bind(&id)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(id)
}

fn parse_events(text: &str) -> Result<Vec<EventType>, StoreError> {
    let names: Vec<String> = json(text)?;
    names.iter().map(|name| parse(name)).collect()
}

fn endpoint_row(row: &AnyRow) -> Result<WebhookEndpoint, StoreError> {
    let events: Option<String> = row.try_get("events")?;
    let status: EndpointStatus = parse(row.try_get("status")?)?;
    Ok(WebhookEndpoint {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        events: events.as_deref().map(parse_events).transpose()?,
        status,
        consecutive_failures: unsigned(row.try_get("consecutive_failures")?)?,
        failing_since: opt_time(row.try_get("failing_since")?)?,
        created_at: time(row.try_get("created_at")?)?,
    })
}

fn delivery_row(row: &AnyRow) -> Result<WebhookDelivery, StoreError> {
    Ok(WebhookDelivery {
        id: row.try_get("id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        event_id: row.try_get("event_id")?,
        event_type: parse(row.try_get("event_type")?)?,
        status: parse(row.try_get("status")?)?,
        next_attempt_at: opt_time(row.try_get("next_attempt_at")?)?,
        created_at: time(row.try_get("created_at")?)?,
        delivered_at: opt_time(row.try_get("delivered_at")?)?,
        attempts: Vec::new(),
    })
}

/// Reads the `EVENT_COLUMNS` of a row.
fn event_row(row: &AnyRow) -> Result<StoredEvent, StoreError> {
    let cursor_object: Option<String> = row.try_get("cursor_object")?;
    let cursor_seq: Option<i64> = row.try_get("cursor_seq")?;
    let cursor_epoch: Option<i64> = row.try_get("cursor_epoch")?;
    let cursor = match (cursor_object, cursor_seq, cursor_epoch) {
        (Some(object), Some(after_seq), Some(epoch)) => Some(CursorPosition {
            object: parse(&object)?,
            after_seq,
            epoch,
        }),
        _ => None,
    };
    let payload: String = row.try_get("payload")?;
    Ok(StoredEvent {
        id: row.try_get("event_id")?,
        event_type: parse(row.try_get("event_type")?)?,
        connection_id: row.try_get("connection_id")?,
        payload: json(&payload)?,
        cursor,
        created_at: time(row.try_get("event_created_at")?)?,
    })
}
