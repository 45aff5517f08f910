//! The delivery worker: claims due deliveries, signs and POSTs them, logs each attempt and
//! schedules the next.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Duration as ChronoDuration, Utc};
use millrace_store::secrets::SecretBox;
use millrace_store::{AttemptRecord, CursorPosition, DueDelivery, Store, StoredEvent};
use rand::Rng;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::signature::SigningSecret;

/// Turns a `records.changed` event's position into the cursor a client passes to
/// `GET /v1/{object}?cursor=`. Cursors are signed by the API; it provides the signer.
pub trait CursorSigner: Send + Sync {
    /// Returns the cursor for `position` in the connection's stream.
    fn cursor(&self, connection_id: &str, position: &CursorPosition) -> String;
}

/// Tuning of the delivery worker; the defaults suit production.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Waits before each retry after a failed attempt: the first failure waits the first one,
    /// and so on; a delivery is `failed` once they are used up. The default spans a day:
    /// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 7 h (eight attempts, the last about 24.6 hours
    /// after the first).
    pub retry_schedule: Vec<Duration>,
    /// Each wait is multiplied by a random factor in `1 ± jitter`, so that deliveries that
    /// failed together do not retry together.
    pub jitter: f64,
    /// How often the worker looks for due deliveries.
    pub poll_interval: Duration,
    /// How long a claimed delivery stays leased; longer than `request_timeout`.
    pub lease: Duration,
    /// Longest wait for an endpoint's answer.
    pub request_timeout: Duration,
    /// Deliveries sent at once by this process.
    pub max_concurrent: usize,
    /// Failed attempts in a row that mark an endpoint `failing` (a delivery that exhausts its
    /// schedule marks it at once).
    pub failing_after: u32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        DeliveryConfig {
            retry_schedule: vec![
                Duration::from_secs(5),
                minutes(5),
                minutes(30),
                minutes(2 * 60),
                minutes(5 * 60),
                minutes(10 * 60),
                minutes(7 * 60),
            ],
            jitter: 0.1,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            request_timeout: Duration::from_secs(15),
            max_concurrent: 8,
            failing_after: 5,
        }
    }
}

/// Sends the outbox's deliveries; cheap to clone. Several workers, in one process or many on
/// one PostgreSQL database, share the work: each delivery is leased to one at a time.
#[derive(Clone)]
pub struct DeliveryWorker {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    secrets: SecretBox,
    config: DeliveryConfig,
    signer: Arc<dyn CursorSigner>,
    http: reqwest::Client,
    worker_id: String,
}

impl DeliveryWorker {
    /// Builds a worker over `store`, opening endpoint secrets with `secrets`. Start it with
    /// [`DeliveryWorker::run`].
    pub fn new(
        store: Store,
        secrets: SecretBox,
        config: DeliveryConfig,
        signer: Arc<dyn CursorSigner>,
    ) -> DeliveryWorker {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            // A redirect is an answer of its own, not a new destination for a signed event.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Millrace-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds with these settings");
        let random = uuid::Uuid::new_v4().simple().to_string();
        DeliveryWorker {
            inner: Arc::new(Inner {
                store,
                secrets,
                config,
                signer,
                http,
                worker_id: format!("webhooks:{}:{}", std::process::id(), &random[..12]),
            }),
        }
    }

    /// Claims and sends due deliveries until `shutdown`, then lets the attempts in flight end
    /// (for at most the request timeout; an attempt cut short is made again after its lease).
    pub async fn run(&self, shutdown: CancellationToken) {
        tracing::info!(worker = %self.inner.worker_id, "webhook delivery worker started");
        let mut in_flight: JoinSet<()> = JoinSet::new();
        while !shutdown.is_cancelled() {
            while in_flight.try_join_next().is_some() {}
            let free = self
                .inner
                .config
                .max_concurrent
                .saturating_sub(in_flight.len());
            let claimed = if free > 0 {
                self.claim(free, &mut in_flight).await
            } else {
                0
            };
            if claimed > 0 && claimed == free {
                // Possibly more are due: look again as soon as a slot frees.
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = in_flight.join_next() => {}
                }
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.inner.config.poll_interval) => {}
            }
        }

        let drain = async { while in_flight.join_next().await.is_some() {} };
        if tokio::time::timeout(self.inner.config.request_timeout, drain)
            .await
            .is_err()
        {
            tracing::warn!("webhook attempts still running at shutdown were cut short");
        }
        tracing::info!(worker = %self.inner.worker_id, "webhook delivery worker stopped");
    }

    /// Claims up to `limit` due deliveries and starts sending them; returns how many.
    async fn claim(&self, limit: usize, in_flight: &mut JoinSet<()>) -> usize {
        let now = Utc::now();
        let lease_until =
            now + ChronoDuration::from_std(self.inner.config.lease).unwrap_or_default();
        let claimed = self
            .inner
            .store
            .claim_webhook_deliveries(
                &self.inner.worker_id,
                now,
                lease_until,
                u32::try_from(limit).unwrap_or(u32::MAX),
            )
            .await;
        match claimed {
            Ok(deliveries) => {
                let count = deliveries.len();
                for due in deliveries {
                    let worker = self.clone();
                    in_flight.spawn(async move { worker.deliver(due).await });
                }
                count
            }
            Err(err) => {
                tracing::error!(error = %err, "claiming webhook deliveries failed");
                0
            }
        }
    }

    /// Makes one attempt of a delivery and logs it.
    async fn deliver(&self, due: DueDelivery) {
        let (status_code, error, latency) = match self.open_secret(&due) {
            Ok(secret) => self.send(&due, &secret).await,
            Err(message) => (None, Some(message), Duration::ZERO),
        };
        let record = AttemptRecord {
            attempted_at: Utc::now(),
            status_code,
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            error,
        };
        let retry_at = match &record.error {
            None => None,
            Some(_) => self.retry_delay(due.attempt).map(|delay| {
                record.attempted_at + ChronoDuration::from_std(delay).unwrap_or_default()
            }),
        };

        match &record.error {
            None => tracing::info!(
                endpoint_id = %due.endpoint_id,
                delivery_id = %due.delivery_id,
                event_type = %due.event.event_type,
                attempt = due.attempt,
                status = status_code,
                latency_ms = record.latency_ms,
                "webhook delivered"
            ),
            Some(error) => tracing::warn!(
                endpoint_id = %due.endpoint_id,
                delivery_id = %due.delivery_id,
                event_type = %due.event.event_type,
                attempt = due.attempt,
                status = status_code,
                latency_ms = record.latency_ms,
                error = %error,
                retry_at = ?retry_at,
                "webhook attempt failed"
            ),
        }
        let logged = self
            .inner
            .store
            .record_webhook_attempt(
                &due.delivery_id,
                &self.inner.worker_id,
                due.attempt,
                &record,
                retry_at,
                self.inner.config.failing_after,
            )
            .await;
        if let Err(err) = logged {
            // The lease runs out and the attempt is made again: at least once, not exactly.
            tracing::error!(
                delivery_id = %due.delivery_id,
                error = %err,
                "logging a webhook attempt failed"
            );
        }
    }

    fn open_secret(&self, due: &DueDelivery) -> Result<SigningSecret, String> {
        self.inner
            .secrets
            .open(&due.sealed_secret)
            .map(SigningSecret::from_bytes)
            .map_err(|err| format!("the endpoint's secret cannot be opened: {err}"))
    }

    /// POSTs the signed event; returns the status, the error (none for a 2xx) and the latency.
    async fn send(
        &self,
        due: &DueDelivery,
        secret: &SigningSecret,
    ) -> (Option<u16>, Option<String>, Duration) {
        let body = self.render(&due.event);
        let timestamp = Utc::now().timestamp();
        let signature = secret.sign(&due.event.id, timestamp, body.as_bytes());
        let request = self
            .inner
            .http
            .post(&due.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &due.event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body);

        let started = Instant::now();
        let answer = request.send().await;
        let latency = started.elapsed();
        match answer {
            Ok(response) if response.status().is_success() => {
                (Some(response.status().as_u16()), None, latency)
            }
            Ok(response) => {
                let status = response.status();
                (
                    Some(status.as_u16()),
                    Some(format!("HTTP {status}")),
                    latency,
                )
            }
            // The URL may carry a token of the receiver's in its query: it stays out.
            Err(err) => (None, Some(describe_send_error(err)), latency),
        }
    }

    /// Returns the body to send: the stored event, with a `records.changed` event's cursor
    /// signed in.
    fn render(&self, event: &StoredEvent) -> String {
        let mut payload = event.payload.clone();
        if let (Some(position), Some(connection_id)) = (&event.cursor, &event.connection_id) {
            let cursor = self.inner.signer.cursor(connection_id, position);
            if let Some(data) = payload.get_mut("data").and_then(Value::as_object_mut) {
                data.insert("cursor".to_owned(), Value::String(cursor));
            }
        }
        payload.to_string()
    }

    /// Returns the wait before the attempt after attempt number `attempt` failed, or `None`
    /// when the schedule is used up.
    fn retry_delay(&self, attempt: u32) -> Option<Duration> {
        let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
        let base = *self.inner.config.retry_schedule.get(index)?;
        let jitter = self.inner.config.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return Some(base);
        }
        let factor = rand::thread_rng().gen_range(1.0 - jitter..=1.0 + jitter);
        Some(base.mul_f64(factor))
    }
}

/// Says why a delivery got no answer, in words an operator can act on: reqwest's own message
/// ("error sending request") is the same for a timeout, a refused connection and a TLS failure.
/// The URL stays out: it may carry a token of the receiver's in its query.
fn describe_send_error(err: reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "no answer in time"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_redirect() {
        "too many redirects"
    } else {
        "request failed"
    };
    let err = err.without_url();
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        detail = format!("{detail}: {cause}");
        source = cause.source();
    }
    format!("{kind} ({detail})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_send_error_says_whether_it_timed_out_or_could_not_connect() {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();

        // Nothing listens on a port just released.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/hook?token=receiver-secret",
            closed.local_addr().unwrap()
        );
        drop(closed);
        let refused = describe_send_error(http.post(&url).send().await.unwrap_err());
        assert!(refused.starts_with("could not connect"), "{refused}");
        assert!(!refused.contains("receiver-secret"), "{refused}");

        // A listener that accepts and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", silent.local_addr().unwrap());
        let _held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                open.push(socket);
            }
        });
        let timed_out = describe_send_error(http.post(&url).send().await.unwrap_err());
        assert!(timed_out.starts_with("no answer in time"), "{timed_out}");
    }
}
