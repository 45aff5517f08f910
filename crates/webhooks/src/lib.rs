//! Webhooks: the operator's endpoints and the worker that delivers the outbox to them.
//!
//! Events are not made here. The store writes each one in the transaction of the change it
//! announces, with a pending delivery per endpoint whose filter takes it (see
//! `millrace_store`'s `webhooks` module). This crate manages endpoints ([`Webhooks`]: register
//! with a fresh secret, list, delete, deliveries and manual retry) and sends deliveries
//! ([`DeliveryWorker`]): claimed with a lease, signed by the Standard Webhooks scheme
//! ([`signature`]), retried on a schedule with jitter, each attempt logged.
//!
//! Delivery is at least once: a receiver may see an event twice (a worker that died after the
//! receiver answered, or a manual retry) and should drop repeats by `webhook-id`.

pub mod signature;
mod worker;

use chrono::Utc;
use millrace_model::{EventType, WebhookDelivery, WebhookEndpoint};
use millrace_store::secrets::SecretBox;
use millrace_store::{NewWebhookEndpoint, Store, StoreError};

pub use signature::SigningSecret;
pub use worker::{CursorSigner, DeliveryConfig, DeliveryWorker};

/// Longest accepted endpoint URL.
const MAX_URL_LEN: usize = 2048;
/// Longest accepted description.
const MAX_DESCRIPTION_LEN: usize = 500;
/// Deliveries listed per endpoint, newest first.
pub const DELIVERIES_LISTED: u32 = 100;

/// Why a webhook operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("no webhook endpoint `{0}`")]
    EndpointNotFound(String),
    #[error("no webhook delivery `{0}`")]
    DeliveryNotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the operator asks to register.
#[derive(Debug, Clone, Default)]
pub struct EndpointRequest {
    /// `http` or `https`, without credentials in it.
    pub url: String,
    /// Event type names (e.g. `records.changed`); `None` takes every type, present and future.
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
}

/// A registered endpoint and its signing secret, which is shown this once.
#[derive(Clone)]
pub struct CreatedEndpoint {
    pub endpoint: WebhookEndpoint,
    /// `whsec_...`: what the receiver verifies signatures with.
    pub secret: String,
}

impl std::fmt::Debug for CreatedEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedEndpoint")
            .field("endpoint", &self.endpoint)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The operator's side of webhooks; cheap to clone.
#[derive(Clone, Debug)]
pub struct Webhooks {
    store: Store,
    secrets: SecretBox,
}

impl Webhooks {
    /// Manages the endpoints of `store`, sealing their secrets with `secrets` (the engine's
    /// box, so that a worker of any process can open them).
    pub fn new(store: Store, secrets: SecretBox) -> Webhooks {
        Webhooks { store, secrets }
    }

    /// Validates and registers an endpoint with a new secret. It receives the events written
    /// from now on.
    pub async fn create_endpoint(
        &self,
        request: EndpointRequest,
    ) -> Result<CreatedEndpoint, WebhookError> {
        let url = validate_url(&request.url)?;
        let events = request.events.map(validate_events).transpose()?;
        let description = request.description.unwrap_or_default().trim().to_owned();
        if description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(WebhookError::InvalidRequest(format!(
                "`description` must be at most {MAX_DESCRIPTION_LEN} characters"
            )));
        }

        let secret = SigningSecret::generate();
        let endpoint = self
            .store
            .create_webhook_endpoint(NewWebhookEndpoint {
                id: format!("wh_{}", uuid::Uuid::now_v7().simple()),
                url,
                description,
                events,
                sealed_secret: self.secrets.seal(secret.as_bytes()),
                created_at: Utc::now(),
            })
            .await?;
        tracing::info!(endpoint_id = %endpoint.id, "webhook endpoint registered");
        Ok(CreatedEndpoint {
            endpoint,
            secret: secret.to_text(),
        })
    }

    /// Lists the endpoints, newest first.
    pub async fn endpoints(&self) -> Result<Vec<WebhookEndpoint>, WebhookError> {
        Ok(self.store.webhook_endpoints().await?)
    }

    /// Returns one endpoint.
    pub async fn endpoint(&self, id: &str) -> Result<WebhookEndpoint, WebhookError> {
        self.store
            .webhook_endpoint(id)
            .await?
            .ok_or_else(|| WebhookError::EndpointNotFound(id.to_owned()))
    }

    /// Deletes an endpoint with its deliveries; nothing more is sent to it.
    pub async fn delete_endpoint(&self, id: &str) -> Result<(), WebhookError> {
        if !self.store.delete_webhook_endpoint(id).await? {
            return Err(WebhookError::EndpointNotFound(id.to_owned()));
        }
        tracing::info!(endpoint_id = %id, "webhook endpoint deleted");
        Ok(())
    }

    /// Lists the endpoint's latest [`DELIVERIES_LISTED`] deliveries, newest first, each with
    /// its attempts.
    pub async fn deliveries(
        &self,
        endpoint_id: &str,
    ) -> Result<Vec<WebhookDelivery>, WebhookError> {
        self.endpoint(endpoint_id).await?;
        Ok(self
            .store
            .webhook_deliveries(endpoint_id, DELIVERIES_LISTED)
            .await?)
    }

    /// Queues a delivery again at once, whatever its status; a worker sends it within its poll
    /// interval.
    pub async fn retry_delivery(&self, id: &str) -> Result<WebhookDelivery, WebhookError> {
        let delivery = self
            .store
            .retry_webhook_delivery(id, Utc::now())
            .await?
            .ok_or_else(|| WebhookError::DeliveryNotFound(id.to_owned()))?;
        tracing::info!(delivery_id = %id, "webhook delivery queued again");
        Ok(delivery)
    }
}

/// Accepts absolute `http`/`https` URLs with a host and no credentials.
fn validate_url(text: &str) -> Result<String, WebhookError> {
    let text = text.trim();
    let invalid = |why: &str| WebhookError::InvalidRequest(format!("`url` {why}"));
    if text.is_empty() {
        return Err(invalid("is required"));
    }
    if text.len() > MAX_URL_LEN {
        return Err(invalid(&format!(
            "must be at most {MAX_URL_LEN} characters"
        )));
    }
    let url = url::Url::parse(text).map_err(|err| invalid(&format!("is not a URL: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "must not carry credentials: the signature proves the sender",
        ));
    }
    if url.fragment().is_some() {
        return Err(invalid("must not have a fragment"));
    }
    Ok(url.to_string())
}

/// Parses event type names, without repeats; refuses an empty list and unknown names.
fn validate_events(names: Vec<String>) -> Result<Vec<EventType>, WebhookError> {
    let known = || {
        EventType::ALL
            .iter()
            .map(|event| event.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if names.is_empty() {
        return Err(WebhookError::InvalidRequest(format!(
            "`events` must name at least one event type (omit it for all): {}",
            known()
        )));
    }
    let mut events = Vec::new();
    for name in names {
        let event: EventType = name.parse().map_err(|_| {
            WebhookError::InvalidRequest(format!(
                "unknown event type `{name}`; known types: {}",
                known()
            ))
        })?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_plain_http_or_https() {
        assert_eq!(
            validate_url(" https://hooks.example.com/millrace?x=1 ").unwrap(),
            "https://hooks.example.com/millrace?x=1"
        );
        assert!(validate_url("http://127.0.0.1:9000/").is_ok());
        for bad in [
            "",
            "hooks.example.com",
            "ftp://hooks.example.com/",
            "https://user:pass@hooks.example.com/",
            "https://hooks.example.com/#part",
            "http://",
        ] {
            assert!(
                matches!(validate_url(bad), Err(WebhookError::InvalidRequest(_))),
                "{bad}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(validate_url(&long).is_err());
    }

    #[test]
    fn event_filters_name_known_types() {
        let events = validate_events(vec![
            "records.changed".into(),
            "sync.failed".into(),
            "records.changed".into(),
        ])
        .unwrap();
        assert_eq!(events, [EventType::RecordsChanged, EventType::SyncFailed]);
        let unknown = validate_events(vec!["record.changed".into()]).unwrap_err();
        assert!(unknown.to_string().contains("records.changed"), "{unknown}");
        assert!(validate_events(Vec::new()).is_err());
    }
}
